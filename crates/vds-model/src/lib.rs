//! vds-model (skeleton).
