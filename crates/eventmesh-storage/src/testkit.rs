//! The storage conformance kit (filled in by the conformance-kit work).
