//! The SCIM 2.0 service provider (RFC 7643 / RFC 7644) at `/scim/v2`: an organization's
//! identity provider provisions its directory (users, and departments as groups) with a bearer
//! token of role `scim`.
//!
//! One subject per file: [`error`] (the SCIM error format), [`schema`] (discovery documents
//! and the resources' JSON), [`filter`] (SCIM filters to the directory's filters), [`patch`]
//! (PATCH operations on a resource's JSON) and [`routes`] (the handlers). Parsing SCIM filter
//! and PATCH path syntax is the `scim_v2` crate's (bounded depth and terms); what it does not
//! do (mapping onto this server's directory, applying PATCH operations, the identity
//! providers' dialects) is here.

pub(crate) mod error;
pub(crate) mod filter;
pub(crate) mod patch;
pub(crate) mod routes;
pub(crate) mod schema;
