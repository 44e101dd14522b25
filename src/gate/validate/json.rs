//! Strict JSON: any value as serde_json reads it, refusing a member named
//! twice at any depth.

use std::{borrow::Cow, fmt};

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// Any JSON value, read as serde_json reads one into a `Value`, and more
/// strictly: no object in it names a member twice. So every string is valid
/// Unicode (no lone surrogate escape) and every number fits an `f64`, and the
/// value reads back the same whatever type it is read into.
pub(super) struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Strict)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut names = Names::new();
        while let Some(key) = map.next_key::<Str>()? {
            if !names.insert(key.0) {
                return Err(de::Error::custom("repeated member"));
            }
            map.next_value_seed(Strict)?;
        }
        Ok(())
    }
}

/// The member names of one JSON object, to refuse a name given twice. The
/// first few live on the stack, so that an ordinary token allocates nothing
/// for them; names are borrowed from the token unless they hold escapes.
pub(super) struct Names<'de> {
    pub(super) inline: [Cow<'de, str>; NAMES_INLINE],
    pub(super) len: usize,
    pub(super) spill: Vec<Cow<'de, str>>,
}

pub(super) const NAMES_INLINE: usize = 8;

impl<'de> Names<'de> {
    pub(super) fn new() -> Names<'de> {
        Names {
            inline: [const { Cow::Borrowed("") }; NAMES_INLINE],
            len: 0,
            spill: Vec::new(),
        }
    }

    /// Adds `name`; false when it is there already.
    pub(super) fn insert(&mut self, name: Cow<'de, str>) -> bool {
        let held = &self.inline[..self.len.min(NAMES_INLINE)];
        if held.iter().chain(&self.spill).any(|n| *n == name) {
            return false;
        }
        match self.inline.get_mut(self.len) {
            Some(slot) => *slot = name,
            None => self.spill.push(name),
        }
        self.len += 1;
        true
    }
}

/// A JSON string, borrowed from the input when it has no escapes.
pub(super) struct Str<'a>(pub(super) Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Str<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// A JSON array of strings.
pub(super) struct Strings<'a>(pub(super) Vec<Cow<'a, str>>);

impl<'de> de::Deserialize<'de> for Strings<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Strings<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strings<'de>, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<Str>()? {
                    out.push(s.0);
                }
                Ok(Strings(out))
            }
        }
        d.deserialize_seq(V)
    }
}
