//! The second pass: serde seeds that walk `runs[]` and hand each `results[]` element,
//! deserialized on its own, to [`Ctx::emit`] before reading the next, skipping everything
//! else (the first pass read it). Memory stays flat whatever the number of results.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::run::RunMeta;
use super::{Ctx, SarifResult};

pub(super) struct LogSeed<'a, 's, 'r>(pub(super) &'a mut Ctx<'s, 'r>);

impl<'de> DeserializeSeed<'de> for LogSeed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for LogSeed<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a SARIF log object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "runs" {
                map.next_value_seed(RunsSeed(&mut *self.0))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct RunsSeed<'a, 's, 'r>(&'a mut Ctx<'s, 'r>);

impl<'de> DeserializeSeed<'de> for RunsSeed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RunsSeed<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of runs")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut n = 0;
        while seq.next_element_seed(RunSeed { ctx: &mut *self.0, n })?.is_some() {
            n += 1;
        }
        Ok(())
    }
}

struct RunSeed<'a, 's, 'r> {
    ctx: &'a mut Ctx<'s, 'r>,
    n: usize,
}

impl<'de> DeserializeSeed<'de> for RunSeed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RunSeed<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a run object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let runs = self.ctx.runs;
        let run = runs.get(self.n).ok_or_else(|| de::Error::custom("the file changed while it was read"))?;
        while let Some(key) = map.next_key::<String>()? {
            if key == "results" {
                map.next_value_seed(ResultsSeed { ctx: &mut *self.ctx, run })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct ResultsSeed<'a, 's, 'r> {
    ctx: &'a mut Ctx<'s, 'r>,
    run: &'r RunMeta,
}

impl<'de> DeserializeSeed<'de> for ResultsSeed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        // `any` so that `"results": null` (a run that produced no result list) is accepted.
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ResultsSeed<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of results or null")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(r) = seq.next_element::<SarifResult>()? {
            self.ctx.emit(self.run, r)?;
        }
        Ok(())
    }
}
