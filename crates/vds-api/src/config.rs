//! The JSON of the configuration document (INTERFACE.md "Configuration documents"):
//! `GET /v1/config` writes it, `PUT /v1/config` reads it. Reading checks the shape (unknown
//! fields refused, every address parsed) and names the field of each fault
//! (`luns[3].backing.kind`); the provider judges the rest against the array.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vds_model::BackingKind;
use vds_provider::{
    ConfigChap, ConfigDoc, ConfigLun, ConfigPortal, ConfigTarget, HintsRequest, SecretBytes,
};

use crate::error::ApiError;

/// The value of `format`.
pub const FORMAT: &str = "vds-config/1";

/// The whole configuration of the subsystem.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigJson {
    /// Always `vds-config/1`.
    pub format: String,
    /// The subsystem's friendly name (absent: left as it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subsystem: Option<String>,
    #[serde(default)]
    pub portals: Vec<ConfigPortalJson>,
    #[serde(default)]
    pub targets: Vec<ConfigTargetJson>,
    #[serde(default)]
    pub luns: Vec<ConfigLunJson>,
}

/// A portal, known by its address.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigPortalJson {
    /// `ADDR:PORT` (IPv6 in brackets).
    pub address: String,
    /// What SendTargets reports instead (`HOST:PORT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise: Option<String>,
    /// `online` (default) or `offline`.
    #[serde(default = "online")]
    pub status: String,
}

fn online() -> String {
    "online".into()
}

fn star() -> String {
    "*".into()
}

fn yes() -> bool {
    true
}

/// A target, known by its IQN.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigTargetJson {
    pub iscsi_name: String,
    pub friendly_name: String,
    /// The CHAP secrets (absent: the target's secrets are left as they are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chap: Option<ConfigChapJson>,
    #[serde(default)]
    pub portal_groups: Vec<ConfigPortalGroupJson>,
}

/// A target's CHAP secrets: exactly these.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigChapJson {
    /// The target-wide secret (any CHAP_N).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<String>,
    /// Per-initiator secrets (CHAP_N is the initiator name).
    #[serde(default)]
    pub initiators: Vec<ConfigSecretJson>,
    /// Mutual CHAP: the secret the target answers each initiator's challenge with.
    #[serde(default)]
    pub mutual: Vec<ConfigSecretJson>,
}

impl std::fmt::Debug for ConfigChapJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConfigChapJson(<secrets>)")
    }
}

/// One initiator's secret.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigSecretJson {
    pub initiator: String,
    pub secret: String,
}

/// A portal group, known by its tag within its target.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigPortalGroupJson {
    pub tag: u16,
    /// Addresses of portals of the document.
    #[serde(default)]
    pub portals: Vec<String>,
}

/// A LUN, known by its friendly name.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigLunJson {
    pub name: String,
    /// Absent: an existing file or device is adopted whatever its size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    pub backing: ConfigBackingJson,
    /// Sparse when vds makes the file (default true).
    #[serde(default = "yes")]
    pub thin: bool,
    /// `*` (default), empty, or comma-separated initiator names.
    #[serde(default = "star")]
    pub unmasking_list: String,
    #[serde(default)]
    pub read_only: bool,
    /// The targets that show the LUN, each with its LUN number.
    #[serde(default)]
    pub targets: Vec<ConfigLunTargetJson>,
    /// The LUN's hints (a new LUN is made with them; an existing LUN's must be these).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hints: Option<ConfigHintsJson>,
}

/// A LUN's hints (INTERFACE.md "Identification and hints"); absent members: the default.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigHintsJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_caching_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_through_caching_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_back_verify_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimal_read_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimal_read_alignment: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimal_write_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimal_write_alignment: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebuild_priority: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast_crash_recovery_required: Option<bool>,
}

impl From<&HintsRequest> for ConfigHintsJson {
    fn from(h: &HintsRequest) -> Self {
        ConfigHintsJson {
            write_caching_enabled: h.write_caching_enabled,
            write_through_caching_enabled: h.write_through_caching_enabled,
            read_back_verify_enabled: h.read_back_verify_enabled,
            optimal_read_size: h.optimal_read_size,
            optimal_read_alignment: h.optimal_read_alignment,
            optimal_write_size: h.optimal_write_size,
            optimal_write_alignment: h.optimal_write_alignment,
            rebuild_priority: h.rebuild_priority,
            fast_crash_recovery_required: h.fast_crash_recovery_required,
        }
    }
}

impl From<ConfigHintsJson> for HintsRequest {
    fn from(h: ConfigHintsJson) -> Self {
        HintsRequest {
            write_caching_enabled: h.write_caching_enabled,
            write_through_caching_enabled: h.write_through_caching_enabled,
            read_back_verify_enabled: h.read_back_verify_enabled,
            optimal_read_size: h.optimal_read_size,
            optimal_read_alignment: h.optimal_read_alignment,
            optimal_write_size: h.optimal_write_size,
            optimal_write_alignment: h.optimal_write_alignment,
            rebuild_priority: h.rebuild_priority,
            fast_crash_recovery_required: h.fast_crash_recovery_required,
            other: Vec::new(),
        }
    }
}

/// Where a LUN's blocks are.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigBackingJson {
    /// `file`, `block`, `memory`, `null` (`extents` and `rbd` are exported, never made).
    pub kind: String,
    /// The file or device; absent for a file: vds's own, in the data dir.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A LUN's number on one target.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigLunTargetJson {
    pub iscsi_name: String,
    pub lun: u64,
}

/// The plan of `PUT /v1/config?dry_run=true`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConfigPlanJson {
    /// One sentence per step; empty: the array already matches.
    pub steps: Vec<String>,
}

impl From<&ConfigDoc> for ConfigJson {
    fn from(d: &ConfigDoc) -> Self {
        let text = |s: &SecretBytes| String::from_utf8_lossy(&s.0).into_owned();
        let pairs = |l: &[(String, SecretBytes)]| {
            l.iter()
                .map(|(n, s)| ConfigSecretJson {
                    initiator: n.clone(),
                    secret: text(s),
                })
                .collect()
        };
        ConfigJson {
            format: FORMAT.into(),
            subsystem: d.subsystem.clone(),
            portals: d
                .portals
                .iter()
                .map(|p| ConfigPortalJson {
                    address: p.address.to_string(),
                    advertise: p.advertise.clone(),
                    status: if p.online { "online" } else { "offline" }.into(),
                })
                .collect(),
            targets: d
                .targets
                .iter()
                .map(|t| ConfigTargetJson {
                    iscsi_name: t.iscsi_name.clone(),
                    friendly_name: t.friendly_name.clone(),
                    chap: t.chap.as_ref().map(|c| ConfigChapJson {
                        shared: c.shared.as_ref().map(text),
                        initiators: pairs(&c.initiators),
                        mutual: pairs(&c.mutual),
                    }),
                    portal_groups: t
                        .portal_groups
                        .iter()
                        .map(|(tag, a)| ConfigPortalGroupJson {
                            tag: *tag,
                            portals: a.iter().map(|a| a.to_string()).collect(),
                        })
                        .collect(),
                })
                .collect(),
            luns: d
                .luns
                .iter()
                .map(|l| ConfigLunJson {
                    name: l.name.clone(),
                    size_bytes: l.size_bytes,
                    backing: ConfigBackingJson {
                        kind: l.kind.short_name().into(),
                        path: l.path.clone(),
                    },
                    thin: l.thin,
                    unmasking_list: l.unmasking_list.clone(),
                    read_only: l.read_only,
                    targets: l
                        .targets
                        .iter()
                        .map(|(t, n)| ConfigLunTargetJson {
                            iscsi_name: t.clone(),
                            lun: *n,
                        })
                        .collect(),
                    hints: l.hints.as_ref().map(ConfigHintsJson::from),
                })
                .collect(),
        }
    }
}

/// `E_INVALIDARG` for `field`.
fn bad(field: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::invalid_arg(format!("{field}: {why}"))
}

fn address(field: &str, s: &str) -> Result<SocketAddr, ApiError> {
    s.trim()
        .parse()
        .map_err(|_| bad(field, format!("{s:?} is not ADDR:PORT (IPv6 in brackets)")))
}

impl ConfigJson {
    /// The document as the provider takes it; the first fault of shape is named.
    pub fn into_doc(self) -> Result<ConfigDoc, ApiError> {
        if self.format != FORMAT {
            return Err(bad(
                "format",
                format!("{:?} is not {FORMAT:?}", self.format),
            ));
        }
        let mut portals = Vec::with_capacity(self.portals.len());
        for (i, p) in self.portals.into_iter().enumerate() {
            let online = match p.status.as_str() {
                "online" => true,
                "offline" => false,
                other => {
                    return Err(bad(
                        &format!("portals[{i}].status"),
                        format!("{other:?} is not online or offline"),
                    ))
                }
            };
            portals.push(ConfigPortal {
                address: address(&format!("portals[{i}].address"), &p.address)?,
                advertise: p.advertise,
                online,
            });
        }
        let mut targets = Vec::with_capacity(self.targets.len());
        for (i, t) in self.targets.into_iter().enumerate() {
            let mut pgs = Vec::with_capacity(t.portal_groups.len());
            for (j, g) in t.portal_groups.into_iter().enumerate() {
                let mut a = Vec::with_capacity(g.portals.len());
                for (k, s) in g.portals.iter().enumerate() {
                    a.push(address(
                        &format!("targets[{i}].portal_groups[{j}].portals[{k}]"),
                        s,
                    )?);
                }
                pgs.push((g.tag, a));
            }
            let secrets = |l: Vec<ConfigSecretJson>| {
                l.into_iter()
                    .map(|s| (s.initiator, SecretBytes(s.secret.into_bytes())))
                    .collect()
            };
            targets.push(ConfigTarget {
                iscsi_name: t.iscsi_name,
                friendly_name: t.friendly_name,
                chap: t.chap.map(|c| ConfigChap {
                    shared: c.shared.map(|s| SecretBytes(s.into_bytes())),
                    initiators: secrets(c.initiators),
                    mutual: secrets(c.mutual),
                }),
                portal_groups: pgs,
            });
        }
        let mut luns = Vec::with_capacity(self.luns.len());
        for (i, l) in self.luns.into_iter().enumerate() {
            let kind = BackingKind::parse(&l.backing.kind).ok_or_else(|| {
                bad(
                    &format!("luns[{i}].backing.kind"),
                    format!("{:?} is not file, block, memory or null", l.backing.kind),
                )
            })?;
            luns.push(ConfigLun {
                name: l.name,
                size_bytes: l.size_bytes,
                kind,
                path: l.backing.path,
                thin: l.thin,
                unmasking_list: l.unmasking_list,
                read_only: l.read_only,
                targets: l
                    .targets
                    .into_iter()
                    .map(|t| (t.iscsi_name, t.lun))
                    .collect(),
                hints: l.hints.map(HintsRequest::from),
            });
        }
        Ok(ConfigDoc {
            subsystem: self.subsystem,
            portals,
            targets,
            luns,
        })
    }
}
