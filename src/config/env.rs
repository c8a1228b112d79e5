//! Environment overrides of settings (`BBB_GATEWAY__A__B=value`), applied to the parsed TOML
//! before it is deserialised.

use super::ENV_PREFIX;

/// Applies `BBB_GATEWAY__A__B=value` to `root.a.b`. Numeric segments index arrays
/// (`BBB_GATEWAY__BBB__SERVERS__0__SECRET`). A value replacing a string stays a string;
/// otherwise it is read as a TOML value when it parses as one.
pub(super) fn apply_env_overrides(
    root: &mut toml::Table,
    env: &[(String, String)],
) -> Result<(), (String, String)> {
    let mut vars: Vec<&(String, String)> = env.iter().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect();
    vars.sort();
    for (name, raw) in vars {
        let path: Vec<String> = name
            .trim_start_matches(ENV_PREFIX)
            .split("__")
            .map(|s| s.to_ascii_lowercase())
            .collect();
        if path.iter().any(|s| s.is_empty()) {
            return Err((name.clone(), "malformed environment override name".into()));
        }
        set_path(root, &path, raw)
            .map_err(|p| (path.join("."), format!("environment override {name}: {p}")))?;
    }
    Ok(())
}

fn set_path(table: &mut toml::Table, path: &[String], raw: &str) -> Result<(), String> {
    let Some((head, rest)) = path.split_first() else {
        return Err("empty path".into());
    };
    if rest.is_empty() {
        let existing_is_string = matches!(table.get(head), Some(toml::Value::String(_)));
        table.insert(head.clone(), env_value(raw, existing_is_string));
        return Ok(());
    }
    let child = table
        .entry(head.clone())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    set_in_value(child, rest, raw)
}

fn set_in_value(value: &mut toml::Value, path: &[String], raw: &str) -> Result<(), String> {
    match value {
        toml::Value::Table(t) => set_path(t, path, raw),
        toml::Value::Array(items) => {
            let Some((head, rest)) = path.split_first() else {
                return Err("empty path".into());
            };
            let index: usize = head
                .parse()
                .map_err(|_| format!("`{head}` is not an array index"))?;
            let item = items
                .get_mut(index)
                .ok_or_else(|| format!("no element {index} in the array"))?;
            if rest.is_empty() {
                let existing_is_string = matches!(item, toml::Value::String(_));
                *item = env_value(raw, existing_is_string);
                Ok(())
            } else {
                set_in_value(item, rest, raw)
            }
        }
        _ => Err("cannot set a key inside a plain value".into()),
    }
}

fn env_value(raw: &str, keep_string: bool) -> toml::Value {
    if keep_string {
        return toml::Value::String(raw.to_string());
    }
    let probe = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&probe) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}
