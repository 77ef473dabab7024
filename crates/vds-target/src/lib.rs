//! vds-target (skeleton).
