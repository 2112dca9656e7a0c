//! Background audit (placeholder while the loop is written).
