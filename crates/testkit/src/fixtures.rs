//! The workspace's shared test data: the CAR files made by other projects under
//! `testdata/fixtures` (go-car, gateway-conformance, ipld; where each comes from is in its
//! `SOURCES.md`).

use std::path::PathBuf;

/// The CARs in `testdata/fixtures` that are known to be bad (listed in `SOURCES.md`), as paths
/// relative to [`fixtures_dir`]. The two "missing block" CARs are valid CARs and not listed.
pub const BAD_FIXTURE_CARS: &[&str] = &[
    "go-car/cmd-badheaderlength.car",
    "go-car/cmd-badsectionlength.car",
    "go-car/sample-corrupt-pragma.car",
    "go-car/sample-v1-tailing-corrupt-section.car",
    "go-car/sample-v2-corrupt-data-and-index.car",
    "go-car/sample-rootless-v42.car",
];

/// The folders of `testdata/fixtures` that hold CARs.
const CAR_DIRS: [&str; 3] = ["go-car", "gateway-conformance", "ipld"];

/// `testdata/fixtures` at the workspace root (absolute, resolved at compile time from this
/// crate's location, so it does not depend on the test's working directory).
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/fixtures"
    ))
}

/// The bytes of `testdata/fixtures/<path>`, e.g. `fixture("go-car/sample-v1.car")`.
///
/// # Panics
/// When the file cannot be read, naming `path` and the error: a missing fixture fails the
/// test.
pub fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(path)).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// Every `.car` file of the fixture folders except [`BAD_FIXTURE_CARS`], as paths relative to
/// [`fixtures_dir`] (`"go-car/sample-v1.car"`), sorted.
///
/// # Panics
/// When a fixture folder cannot be listed.
pub fn valid_fixture_cars() -> Vec<String> {
    all_fixture_cars()
        .into_iter()
        .filter(|f| !BAD_FIXTURE_CARS.contains(&f.as_str()))
        .collect()
}

/// Every `.car` file of the fixture folders (go-car, gateway-conformance, ipld), valid or
/// not, as paths relative to [`fixtures_dir`], sorted.
fn all_fixture_cars() -> Vec<String> {
    let mut out = Vec::new();
    for dir in CAR_DIRS {
        let path = fixtures_dir().join(dir);
        let entries = std::fs::read_dir(&path)
            .unwrap_or_else(|e| panic!("fixture folder {}: {e}", path.display()));
        for entry in entries {
            let name = entry
                .unwrap_or_else(|e| panic!("fixture folder {}: {e}", path.display()))
                .file_name()
                .into_string()
                .unwrap_or_else(|name| panic!("fixture name {name:?} is not UTF-8"));
            if name.ends_with(".car") {
                out.push(format!("{dir}/{name}"));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_car_is_a_fixture_and_not_valid() {
        let cars = all_fixture_cars();
        let valid = valid_fixture_cars();
        assert_eq!(valid.len() + BAD_FIXTURE_CARS.len(), cars.len(), "{cars:?}");
        for bad in BAD_FIXTURE_CARS {
            assert!(cars.iter().any(|c| c == bad), "{bad} missing");
            assert!(!fixture(bad).is_empty(), "{bad} is empty");
        }
    }
}
