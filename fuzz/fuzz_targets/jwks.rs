//! JWKS documents, parsed key by key: no document may panic the parser, and
//! a second parse against the first result (the refresher's reuse path) must
//! agree with it.
#![no_main]

use authgate::keys::KeySet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((first, skipped)) = KeySet::from_jwks(data, None) {
        let (again, skipped_again) = KeySet::from_jwks(data, Some(&first)).expect("parses twice");
        assert_eq!(first.len(), again.len());
        assert_eq!(skipped.len(), skipped_again.len());
        for key in again.keys() {
            assert!(first.holds(key), "an unchanged key was not reused");
        }
    }
});
