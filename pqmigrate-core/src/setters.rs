//! Builder-style setters for the options structs, which are `#[non_exhaustive]` so that they
//! can grow without breaking their users: start from `Default` (or the struct's `new`) and
//! chain a setter per field to change.

/// `setters!(Type { set field: T, ... })` makes `fn field(self, value: impl Into<T>) -> Self`
/// for each field; `val` takes exactly `T` (numbers, flags, durations, whose literals must not
/// be left to inference); `some` and `some_val` do the same for an `Option<T>` field, setting
/// `Some(value)`.
macro_rules! setters {
    ($ty:ty { $($kind:ident $field:ident : $arg:ty),* $(,)? }) => {
        impl $ty {
            $( $crate::setters::setters!(@one $kind $field $arg); )*
        }
    };
    (@one set $field:ident $arg:ty) => {
        #[doc = concat!("Sets `", stringify!($field), "`.")]
        #[must_use]
        pub fn $field(mut self, value: impl Into<$arg>) -> Self {
            self.$field = value.into();
            self
        }
    };
    (@one val $field:ident $arg:ty) => {
        #[doc = concat!("Sets `", stringify!($field), "`.")]
        #[must_use]
        pub fn $field(mut self, value: $arg) -> Self {
            self.$field = value;
            self
        }
    };
    (@one some_val $field:ident $arg:ty) => {
        #[doc = concat!("Sets `", stringify!($field), "`.")]
        #[must_use]
        pub fn $field(mut self, value: $arg) -> Self {
            self.$field = Some(value);
            self
        }
    };
    (@one some $field:ident $arg:ty) => {
        #[doc = concat!("Sets `", stringify!($field), "`.")]
        #[must_use]
        pub fn $field(mut self, value: impl Into<$arg>) -> Self {
            self.$field = Some(value.into());
            self
        }
    };
}

pub(crate) use setters;
