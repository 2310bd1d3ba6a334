//! Identifier newtypes. Public signatures never take bare integers for these.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl $name {
            /// The raw number.
            pub fn get(self) -> $inner {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_newtype!(
    /// A column's permanent identity. Names may change; a field id never does, and is never
    /// reused within a table.
    FieldId(i32)
);
id_newtype!(
    /// Identifies one schema in a table's list of schemas.
    SchemaId(i32)
);
id_newtype!(
    /// Identifies one partition spec in a table's list of specs.
    SpecId(i32)
);
id_newtype!(
    /// A commit version. Version 0 is the empty table made by CREATE TABLE; every commit adds
    /// one. It is also the snapshot id a user types in `VERSION AS OF n`.
    Version(u64)
);

impl Version {
    /// The version that the next commit on top of this one creates.
    pub fn next(self) -> Version {
        Version(self.0 + 1)
    }
}
