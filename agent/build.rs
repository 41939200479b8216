//! Build script: on Windows targets, embed the icon and the version information (from Cargo.toml)
//! into `till-agent.exe` through a generated resource script compiled by `embed-resource`
//! (mingw's `windres` when cross-compiling from Linux). Does nothing for other targets.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=assets/till-agent.ico");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("windows") {
        return;
    }
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let version = std::env::var("CARGO_PKG_VERSION").expect("CARGO_PKG_VERSION");
    let num = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u16>().ok()).unwrap_or(0);
    let (major, minor, patch) = (
        num("CARGO_PKG_VERSION_MAJOR"),
        num("CARGO_PKG_VERSION_MINOR"),
        num("CARGO_PKG_VERSION_PATCH"),
    );
    let icon = manifest_dir.join("assets").join("till-agent.ico");
    // windres wants forward slashes (or doubled backslashes) inside the quoted path.
    let icon = icon.to_string_lossy().replace('\\', "/");
    let rc = format!(
        r#"#pragma code_page(65001)
1 ICON "{icon}"

1 VERSIONINFO
FILEVERSION {major},{minor},{patch},0
PRODUCTVERSION {major},{minor},{patch},0
FILEOS 0x40004
FILETYPE 0x1
BEGIN
  BLOCK "StringFileInfo"
  BEGIN
    BLOCK "040904B0"
    BEGIN
      VALUE "CompanyName", "Till Agent\0"
      VALUE "FileDescription", "Till Agent - loyalty companion for shop tills\0"
      VALUE "FileVersion", "{version}\0"
      VALUE "InternalName", "till-agent\0"
      VALUE "OriginalFilename", "till-agent.exe\0"
      VALUE "ProductName", "Till Agent\0"
      VALUE "ProductVersion", "{version}\0"
    END
  END
  BLOCK "VarFileInfo"
  BEGIN
    VALUE "Translation", 0x409, 1200
  END
END
"#
    );
    let rc_path = out_dir.join("till-agent.rc");
    std::fs::write(&rc_path, rc).expect("write till-agent.rc");
    // Only the binary gets the resources (not the library or test executables).
    embed_resource::compile_for(&rc_path, ["till-agent"], embed_resource::NONE)
        .manifest_required()
        .unwrap_or_else(|e| panic!("embedding the Windows resources (icon, version) failed: {e}"));
}
