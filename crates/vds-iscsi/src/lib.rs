//! vds-iscsi (skeleton).
