//! The languages the agent speaks to people, and how the one to use is chosen (configuration, else
//! the operating system's UI language). Shared vocabulary: configuration, UI and CLI depend on it,
//! it depends on nothing of the agent.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Cs,
    Sk,
    Hr,
    En,
}

impl Lang {
    pub const ALL: [Lang; 4] = [Lang::Cs, Lang::Sk, Lang::Hr, Lang::En];

    pub fn code(self) -> &'static str {
        match self {
            Lang::Cs => "cs",
            Lang::Sk => "sk",
            Lang::Hr => "hr",
            Lang::En => "en",
        }
    }

    /// Parse `cs`, `cs_CZ.UTF-8`, `sk-SK`, `hr_HR@euro`, `en_US`, `C`… (case-insensitive).
    /// `None` for a language the agent does not speak.
    pub fn parse(s: &str) -> Option<Lang> {
        let s = s.trim().to_ascii_lowercase();
        let primary: String = s.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
        match primary.as_str() {
            "cs" | "cz" | "czech" => Some(Lang::Cs),
            "sk" | "slovak" => Some(Lang::Sk),
            "hr" | "croatian" => Some(Lang::Hr),
            "en" | "english" => Some(Lang::En),
            _ => None,
        }
    }

    /// The configured language if given (an unknown value is an error naming it), else the OS's.
    pub fn resolve(configured: Option<&str>) -> Result<Lang, String> {
        match configured.map(str::trim).filter(|s| !s.is_empty() && *s != "auto") {
            Some(s) => {
                Lang::parse(s).ok_or_else(|| format!("language = {s:?}: expected one of cs, sk, hr, en or auto"))
            }
            None => Ok(Lang::from_os()),
        }
    }

    /// The user's UI language: `LC_ALL`, `LC_MESSAGES`, `LANG` on Unix; `GetUserDefaultUILanguage`
    /// on Windows. English when unknown.
    pub fn from_os() -> Lang {
        match crate::os::ui_langid() {
            Some(langid) => Lang::from_langid(langid),
            None => Lang::from_env_vars(|k| std::env::var(k).ok()),
        }
    }

    /// POSIX precedence: the first non-empty of LC_ALL, LC_MESSAGES, LANG decides.
    pub fn from_env_vars(get: impl Fn(&str) -> Option<String>) -> Lang {
        ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .filter_map(|k| get(k).filter(|v| !v.is_empty()))
            .next()
            .and_then(|v| Lang::parse(&v))
            .unwrap_or(Lang::En)
    }

    /// Windows LANGID: primary language in the low 10 bits (cs 0x05, sk 0x1b, hr/sr/bs 0x1a:
    /// Croatian is sub-language 0x01 (hr-HR) or 0x04 (hr-BA)).
    pub fn from_langid(langid: u16) -> Lang {
        let primary = langid & 0x3ff;
        let sub = langid >> 10;
        match primary {
            0x05 => Lang::Cs,
            0x1b => Lang::Sk,
            0x1a if sub == 0x01 || sub == 0x04 => Lang::Hr,
            _ => Lang::En,
        }
    }
}
