//! The subsystem's own small calls (BEHAVIOUR.md §14 "Subsystem surface"): rename
//! (`IVdsSubSystemNaming::SetFriendlyName`), `IVdsSubSystemInterconnect::GetSupportedInterconnects`
//! and the provider's `IVdsProviderSupport::GetVersionSupport`. SetStatus and
//! SetControllerStatus live with the other path objects in `path.rs`.

use uuid::Uuid;
use vds_model::{EventKind, InterconnectFlag, ObjectKind, VersionSupportFlag};

use crate::commit::Change;
use crate::{Outcome, Provider, VdsError};

use super::check_name;

/// What `GetVersionSupport` answers. VDS 1.0 is the object model of a hardware provider
/// (provider, subsystem, controller, drive, LUN and its plexes) and VDS 1.1 adds the iSCSI
/// objects (targets, portal groups, portals, `IVdsLunIscsi`): vds serves both. The 2.x bits
/// promise the "2" interfaces (`IVdsSubSystem2`, `IVdsLun2`, `IVdsDrive2`, `VDS_HINTS2`,
/// `CreateLun2`) and 3.0 storage pools; none of them is implemented, so none is claimed.
pub(crate) const VERSION_SUPPORT: &[VersionSupportFlag] =
    &[VersionSupportFlag::Speed10, VersionSupportFlag::Speed11];

/// What `GetSupportedInterconnects` answers: the data path speaks iSCSI and nothing else.
pub(crate) const INTERCONNECTS: &[InterconnectFlag] = &[InterconnectFlag::Iscsi];

impl Provider {
    pub(super) fn rename_subsystem(
        &self,
        id: Uuid,
        friendly_name: String,
    ) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Subsystem, id)?;
        let name = check_name("friendly_name", &friendly_name)?;
        st.check_free(&[(ObjectKind::Subsystem, id)])?;
        let mut s = st.subsystems[&id].clone();
        if s.friendly_name == name {
            return Ok(Outcome::Subsystem(s));
        }
        s.friendly_name = name;
        let change = Change::new()
            .store(|tx| tx.put_subsystem(&s))
            .apply(|st| {
                if let Some(x) = st.subsystems.get_mut(&id) {
                    x.friendly_name = s.friendly_name.clone();
                }
            })
            .event(ObjectKind::Subsystem, EventKind::Modify, id);
        inner.commit(st, change, None)?;
        Ok(Outcome::Subsystem(s))
    }

    pub(super) fn supported_interconnects(&self, id: Uuid) -> Result<Outcome, VdsError> {
        let mut st = self.inner.state.lock();
        self.inner.object_call(&mut st, ObjectKind::Subsystem, id)?;
        Ok(Outcome::Interconnects(InterconnectFlag::bits(
            INTERCONNECTS,
        )))
    }
}
