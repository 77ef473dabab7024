//! vds-testkit (skeleton).
