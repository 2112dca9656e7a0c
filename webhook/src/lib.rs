//! The admission webhook: AdmissionReview v1 over TLS in, a decision and a
//! JSON Patch out. A thin layer over `tollgate-policies`.
