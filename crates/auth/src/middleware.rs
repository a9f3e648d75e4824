//! The authentication and rate-limit middleware, applied per route group with
//! `axum::middleware::from_fn_with_state(guard, authenticate)`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, header};

use crate::authenticator::{AuthUser, Authenticator, Refusal};
use crate::client_addr::ClientAddrs;
use crate::db::Role;
use crate::metrics::{KeyType, Method, Reason};
use crate::problem;
use crate::ratelimit::{AUTH_FAILURES, Decision, RateKey, RateLimiter};

/// Longest credential accepted; anything longer is a malformed header.
const MAX_TOKEN_LEN: usize = 8192;

/// What the middleware needs for one route group.
#[derive(Clone, Debug)]
pub struct Guard {
    pub auth: Arc<Authenticator>,
    pub limiter: Option<Arc<RateLimiter>>,
    /// Rate-limit group of these routes (`auth`, `users`, or any configured name).
    pub group: &'static str,
    /// Role required by every route of the group (`None`: any authenticated user).
    pub role: Option<Role>,
    /// The process's client-address resolver (`auth.trusted_proxies`), shared by every group.
    pub clients: Arc<ClientAddrs>,
}

/// The credential in the request, or why there is none.
#[derive(Debug, PartialEq, Eq)]
pub enum Credential<'a> {
    Token(&'a str),
    Missing,
    Malformed,
}

/// `Authorization: Bearer <token>` (scheme case-insensitive, exactly two fields), else
/// `X-API-Key: <token>`. Never panics, whatever the bytes.
pub fn parse_credential(headers: &HeaderMap) -> Credential<'_> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let Ok(s) = v.to_str() else { return Credential::Malformed };
        let mut parts = s.split_ascii_whitespace();
        return match (parts.next(), parts.next(), parts.next()) {
            (Some(scheme), Some(token), None) if scheme.eq_ignore_ascii_case("bearer") => token_of(token),
            _ => Credential::Malformed,
        };
    }
    match headers.get("x-api-key").map(|v| v.to_str().map(str::trim)) {
        None => Credential::Missing,
        Some(Ok(token)) => token_of(token),
        Some(Err(_)) => Credential::Malformed,
    }
}

fn token_of(token: &str) -> Credential<'_> {
    let visible = token.bytes().all(|b| b.is_ascii_graphic());
    if token.is_empty() || token.len() > MAX_TOKEN_LEN || !visible {
        Credential::Malformed
    } else {
        Credential::Token(token)
    }
}

/// The middleware: checks the credential first (a valid one is never refused by the failure
/// guard), then the role and the principal's rate limit for the group; a failed credential is
/// counted against the client address and answered 429 once the address is over
/// `auth.rate_limit.auth_failures`. Records one decision and puts [`AuthUser`] into the request
/// extensions.
pub async fn authenticate(State(guard): State<Guard>, mut request: Request, next: Next) -> Response {
    if !guard.auth.enabled() {
        return next.run(request).await;
    }
    let start = Instant::now();
    let ctx = Ctx::of(&guard, &request);
    let token = match parse_credential(request.headers()) {
        Credential::Token(t) => t.to_string(),
        Credential::Missing => return ctx.refuse(&guard, Refusal::bare(Reason::MissingAuth), start).await,
        Credential::Malformed => return ctx.refuse(&guard, Refusal::bare(Reason::InvalidFormat), start).await,
    };
    let user = match guard.auth.authenticate(&token).await {
        Ok(user) => user,
        Err(refusal) => return ctx.refuse(&guard, refusal, start).await,
    };
    let decision = match ctx.group_limit(&guard, &user).await {
        Ok(d) => d,
        Err(response) => return response,
    };
    if decision.is_some_and(|d| !d.allowed) {
        guard.auth.metrics().decision(Reason::RateLimited, user.method, start.elapsed());
        guard.auth.metrics().rate_limited(ctx.ip, &user.id, &ctx.route, KeyType::User);
        audit(Reason::RateLimited, &ctx, Some(&user.id));
        return with_limit_headers(problem::too_many(decision.map_or(1, |d| d.reset)), decision);
    }
    guard.auth.metrics().decision(Reason::None, user.method, start.elapsed());
    if guard.role == Some(Role::Admin) && !user.is_admin() {
        tracing::warn!(target: "audit", event = "authz_fail", user = %user.id, route = %ctx.route, "insufficient role");
        return problem::forbidden();
    }
    request.extensions_mut().insert(user);
    with_limit_headers(next.run(request).await, decision)
}

impl Guard {
    /// Checks a credential presented outside the request headers (the console's sign-in form)
    /// exactly as [`authenticate`] checks a header: a wrong or expired credential is counted
    /// against the client address (`auth.rate_limit.auth_failures`, 429 past it), each outcome
    /// is one recorded decision and each refusal one audit line. `Err` is the answer the API
    /// would give (400, 401, 429 or 503); the caller shows it its own way.
    pub async fn check_token(
        &self,
        peer: Option<SocketAddr>,
        headers: &HeaderMap,
        route: &str,
        token: &str,
    ) -> Result<AuthUser, Response> {
        let start = Instant::now();
        let ctx = Ctx { ip: self.clients.resolve(peer, headers), route: route.to_string() };
        let token = token.trim();
        let token = match token_of(token) {
            Credential::Token(t) => t,
            _ if token.is_empty() => return Err(ctx.refuse(self, Refusal::bare(Reason::MissingAuth), start).await),
            _ => return Err(ctx.refuse(self, Refusal::bare(Reason::InvalidFormat), start).await),
        };
        match self.auth.authenticate(token).await {
            Ok(user) => {
                self.auth.metrics().decision(Reason::None, user.method, start.elapsed());
                Ok(user)
            }
            Err(refusal) => Err(ctx.refuse(self, refusal, start).await),
        }
    }

    /// Admits a caller authenticated by other means (a console session, `user.method`): the
    /// group's rate limit for its principal and the role, as [`authenticate`] applies them, with
    /// one recorded decision. `Err` is the 429, 403 or 503 to answer.
    pub async fn admit(
        &self,
        peer: Option<SocketAddr>,
        headers: &HeaderMap,
        route: &str,
        user: &AuthUser,
    ) -> Result<(), Response> {
        let start = Instant::now();
        let ctx = Ctx { ip: self.clients.resolve(peer, headers), route: route.to_string() };
        let decision = ctx.group_limit(self, user).await?;
        if decision.is_some_and(|d| !d.allowed) {
            self.auth.metrics().decision(Reason::RateLimited, user.method, start.elapsed());
            self.auth.metrics().rate_limited(ctx.ip, &user.id, &ctx.route, KeyType::User);
            audit(Reason::RateLimited, &ctx, Some(&user.id));
            return Err(with_limit_headers(problem::too_many(decision.map_or(1, |d| d.reset)), decision));
        }
        self.auth.metrics().decision(Reason::None, user.method, start.elapsed());
        if self.role == Some(Role::Admin) && !user.is_admin() {
            tracing::warn!(target: "audit", event = "authz_fail", user = %user.id, route = %ctx.route, "insufficient role");
            return Err(problem::forbidden());
        }
        Ok(())
    }

    /// Records a refused credential that is not a guess (a console request without a session, or
    /// with an expired or revoked one): one decision and one audit line, nothing counted against
    /// the address.
    pub fn refused(
        &self,
        peer: Option<SocketAddr>,
        headers: &HeaderMap,
        route: &str,
        reason: Reason,
        method: Method,
        elapsed: std::time::Duration,
    ) {
        let ctx = Ctx { ip: self.clients.resolve(peer, headers), route: route.to_string() };
        self.auth.metrics().decision(reason, method, elapsed);
        audit(reason, &ctx, None);
    }
}

impl Refusal {
    fn bare(reason: Reason) -> Self {
        Refusal { reason, method: Method::Unknown, subject: None }
    }
}

/// Per-request facts the decision and the audit log use.
struct Ctx {
    ip: Option<IpAddr>,
    route: String,
}

impl Ctx {
    fn of(guard: &Guard, request: &Request) -> Self {
        let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
        let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_string();
        Self { ip: guard.clients.resolve(peer, request.headers()), route }
    }

    /// Answers a refused credential: 503 when the store could not check it; a wrong or expired
    /// credential is counted against the address and answered 429 past the failure limit (503
    /// when the limiter cannot count and fails closed), else 401; a missing or malformed header
    /// is not a guess and is answered 401/400 uncounted.
    async fn refuse(&self, guard: &Guard, refusal: Refusal, start: Instant) -> Response {
        if refusal.reason == Reason::Unknown {
            return self.refused(
                guard,
                &refusal,
                refusal.reason,
                start,
                problem::unavailable(compozy_store::RETRY_AFTER.as_secs()),
            );
        }
        let guess = matches!(refusal.reason, Reason::InvalidCredentials | Reason::ExpiredToken);
        if let Some(limiter) = guard.limiter.as_ref().filter(|l| l.enabled() && guess) {
            match limiter.hit(AUTH_FAILURES, &RateKey::Ip(self.ip)).await {
                Ok(d) if !d.allowed => {
                    guard.auth.metrics().rate_limited(self.ip, "", &self.route, KeyType::Ip);
                    let response = with_limit_headers(problem::too_many(d.reset), Some(d));
                    return self.refused(guard, &refusal, Reason::RateLimited, start, response);
                }
                Ok(_) => {}
                Err(_) => return self.refused(guard, &refusal, refusal.reason, start, problem::unavailable(1)),
            }
        }
        let response = match refusal.reason {
            Reason::InvalidFormat => problem::bad_header(),
            _ => problem::unauthorized(),
        };
        self.refused(guard, &refusal, refusal.reason, start, response)
    }

    /// Records the decision and the audit line of a refusal, and returns `response`.
    fn refused(
        &self,
        guard: &Guard,
        refusal: &Refusal,
        reason: Reason,
        start: Instant,
        response: Response,
    ) -> Response {
        guard.auth.metrics().decision(reason, refusal.method, start.elapsed());
        audit(reason, self, refusal.subject.as_deref());
        response
    }

    /// The group's limit for this caller's principal (every key and token of one user share
    /// it); `Err` is the 503 of a fail-closed limiter.
    async fn group_limit(&self, guard: &Guard, user: &AuthUser) -> Result<Option<Decision>, Response> {
        let Some(limiter) = guard.limiter.as_ref().filter(|l| l.enabled()) else { return Ok(None) };
        match limiter.hit(guard.group, &RateKey::User(user.id.clone())).await {
            Ok(d) => Ok(Some(d)),
            Err(_) => Err(problem::unavailable(1)),
        }
    }
}

/// One `audit` line per refusal: reason, masked address, key prefix or subject, route template.
fn audit(reason: Reason, ctx: &Ctx, subject: Option<&str>) {
    tracing::warn!(
        target: "audit",
        event = "authn_fail",
        reason = reason.as_str(),
        ip = %crate::metrics::mask_ip(ctx.ip),
        subject = subject.unwrap_or(""),
        route = %ctx.route,
        "authentication refused"
    );
}

fn with_limit_headers(mut response: Response, decision: Option<Decision>) -> Response {
    if let Some(d) = decision {
        let h = response.headers_mut();
        h.insert("ratelimit-limit", HeaderValue::from(d.limit));
        h.insert("ratelimit-remaining", HeaderValue::from(d.remaining));
        h.insert("ratelimit-reset", HeaderValue::from(d.reset));
    }
    response
}
