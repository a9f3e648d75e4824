//! Who a page is for and why an action was refused: the facts pages render, apart from how a
//! session turns into them (`session`), so views and sessions do not import each other.

use compozy_auth::Role;

/// The signed-in operator of a request.
#[derive(Clone, Debug)]
pub struct Viewer {
    /// The principal's id (a local user id, or a JWT principal's).
    pub id: String,
    pub role: Role,
    /// The token every form of this session carries.
    pub csrf: String,
    /// The session's cookie value; `None` when authentication is off.
    pub cookie: Option<String>,
}

impl Viewer {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// Why an action was refused before it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The form's token is not this session's, or the request came from another site.
    Forged,
    /// A `user` asked for what only an `admin` may do.
    Role,
}
