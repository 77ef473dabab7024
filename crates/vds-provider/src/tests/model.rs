//! Property test: random sequences of commands against a small model of the rules (status
//! judgement, slots are free between calls, deletion/tombstones, association rules). The model
//! predicts the HRESULT of every call; the provider must agree, and after the sequence the
//! provider's objects must match the model (also after a restart).
