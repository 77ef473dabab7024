//! vds-store (skeleton).
