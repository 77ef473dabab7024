//! vds-api (skeleton).
