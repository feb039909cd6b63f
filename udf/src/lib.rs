//! `vrun_launchviewer(args_json)`: the MariaDB/MySQL UDF through which the `launch_viewer`
//! stored procedure (sql/mariadb/) runs launchviewer, in place of SWAMP's `sys_eval`.
//!
//! `sys_eval` handed a whole command line to `/bin/sh`, so a quote in a package name was
//! one step from running anything as the database's user. This UDF takes the options as a
//! JSON array of name/value pairs, lets through only SWAMP's option names ([`argv`]), passes
//! each as one `--name=value` argument to the configured launchviewer (no shell, no way for
//! a value to become another option), reads its stdout to end of file within a timeout and
//! returns it ([`run`]). Which program runs, and with which agent-monitor, launcher secret
//! and database credentials, is set by the administrator in a file ([`config`]), never by
//! the SQL caller. docs/launchviewer.md has the setup.
//!
//! ```sql
//! CREATE FUNCTION vrun_launchviewer RETURNS STRING SONAME 'libvrun_udf.so';
//! SELECT vrun_launchviewer(JSON_ARRAY('viewer_name', 'CodeDX', 'project', 'p1', ...));
//! ```

pub mod argv;
pub mod config;
pub mod run;

use udf::prelude::*;

/// The UDF's state between calls: nothing (each call reads the configuration afresh, so
/// an administrator's change needs no `DROP FUNCTION`).
pub struct VrunLaunchviewer;

#[register(name = "vrun_launchviewer")]
impl BasicUdf for VrunLaunchviewer {
    type Returns<'a> = Option<String>;

    fn init(cfg: &UdfCfg<Init>, args: &ArgList<Init>) -> Result<Self, String> {
        if args.len() != 1 {
            return Err(format!(
                "vrun_launchviewer takes one argument (a JSON array of option names and values), got {}",
                args.len()
            ));
        }
        if let Some(mut a) = args.get(0) {
            a.set_type_coercion(SqlType::String);
        }
        cfg.set_maybe_null(true);
        cfg.set_max_len(run::MAX_OUTPUT as u64);
        Ok(VrunLaunchviewer)
    }

    fn process<'a>(
        &'a mut self,
        _cfg: &UdfCfg<Process>,
        args: &ArgList<Process>,
        _error: Option<NonZeroU8>,
    ) -> Result<Self::Returns<'a>, ProcessError> {
        let json = args.get(0).and_then(|a| a.value().as_bytes().map(<[u8]>::to_vec));
        Ok(Some(call(json.as_deref())))
    }
}

/// One call, as a string: launchviewer's line, or an `ERROR …` line of the UDF's own.
pub fn call(json: Option<&[u8]>) -> String {
    let outcome = (|| {
        let json = json.ok_or("the argument is NULL")?;
        let argv = argv::from_json(json)?;
        let cfg = config::Config::load()?;
        run::launchviewer(&cfg, &argv)
    })();
    match outcome {
        Ok(line) => line,
        Err(e) => format!("ERROR vrun_launchviewer: {e}"),
    }
}
