//! What a component's `validate()` reports: a problem, tied to one of its
//! keys when it can be, and the range check every setting shares. It
//! imports nothing, so every module (and every plugin) can use it.

/// A problem a component's `validate()` found, optionally tied to one of its keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The top-level key of the component it concerns, if any.
    pub field: Option<&'static str>,
    /// What is wrong.
    pub message: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self { field: Some(field), message: message.into() }
    }
}

/// A setting outside `min..=max` (NaN included) is a problem with `field`.
pub fn check_range<T: PartialOrd + std::fmt::Display>(
    errors: &mut Vec<FieldError>,
    field: &'static str,
    value: T,
    (min, max): (T, T),
) {
    if !(value >= min && value <= max) {
        errors.push(FieldError::new(
            field,
            format!("{field} is {value}; it must be from {min} to {max}"),
        ));
    }
}
