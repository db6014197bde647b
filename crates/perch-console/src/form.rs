//! Posted forms: the session, its form token checked, then the fields.

use axum::extract::{Form, FromRequest, FromRequestParts, Request};

use crate::ConsoleState;
use crate::error::ConsoleError;
use crate::session::Session;

/// The form field carrying the form token.
pub(crate) const CSRF_FIELD: &str = "csrf";

/// A form's fields as posted, in order (a name may repeat).
#[derive(Debug, Default)]
pub(crate) struct Fields(Vec<(String, String)>);

impl Fields {
    /// The first value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name` (checkboxes), in order.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, or the empty string.
    pub(crate) fn text(&self, name: &str) -> &str {
        self.get(name).unwrap_or_default()
    }

    /// Reads an `application/x-www-form-urlencoded` body. A body that is
    /// not one reads as no fields, which no form token check passes.
    pub(crate) async fn read(request: Request, state: &ConsoleState) -> Self {
        match Form::<Vec<(String, String)>>::from_request(request, state).await {
            Ok(Form(pairs)) => Self(pairs),
            Err(_) => Self::default(),
        }
    }
}

/// A POST from a signed-in session that carried the session's form token:
/// the extractor of every console action. No session: the sign-in page;
/// no or a wrong token: 403, before anything else is looked at.
#[derive(Debug)]
pub(crate) struct Posted {
    pub(crate) session: Session,
    pub(crate) fields: Fields,
}

impl FromRequest<ConsoleState> for Posted {
    type Rejection = ConsoleError;

    async fn from_request(request: Request, state: &ConsoleState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let fields = Fields::read(Request::from_parts(parts, body), state).await;
        session.check_csrf(fields.get(CSRF_FIELD))?;
        Ok(Self { session, fields })
    }
}
