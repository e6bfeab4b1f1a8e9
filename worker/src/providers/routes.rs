//! The one route loop of the worker: a step's routes (the primary, then its fallbacks) tried in
//! order until one answers, and the failure of them all typed as the coordinator needs it.

use crate::redact::redact;
use scriptorium_proto::v1::{Failure, FailureCause};

/// Tries `routes` in order until one answers, `on_route` doing one route's work; the one route
/// loop of the worker. An empty list is an error, never a silent default. When every route
/// fails, the failure is permanent only if every route's was (a fallback that timed out may
/// answer next time), and its message names each route's failure.
pub async fn first_route<'a, T, Fut>(
    routes: &'a [String],
    mut on_route: impl FnMut(&'a str) -> Fut,
) -> Result<T, Failure>
where
    Fut: std::future::Future<Output = Result<T, Failure>> + 'a,
{
    if routes.is_empty() {
        return Err(Failure::new(
            FailureCause::BadRequest,
            "the step names no route to a model (set coordinator.routes.default or the brief's [models])",
        ));
    }
    let mut failures: Vec<Failure> = Vec::new();
    for route in routes {
        match on_route(route).await {
            Ok(t) => return Ok(t),
            Err(mut f) => {
                tracing::warn!(route = %route, cause = f.cause().label(), error = %f, "route failed");
                if f.route.is_empty() {
                    f.route = route.clone();
                }
                failures.push(f);
            }
        }
    }
    let message =
        redact(&failures.iter().map(|f| f.message.as_str()).collect::<Vec<_>>().join("; "));
    let worst = match failures.iter().rposition(|f| !f.cause().is_permanent()) {
        Some(i) => failures.swap_remove(i),
        None => failures.swap_remove(0),
    };
    Err(Failure { message, route: routes.last().cloned().unwrap_or_default(), ..worst })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn routes_are_tried_in_order_and_all_failing_is_permanent_only_if_each_was() {
        let f = |cause, msg: &str| Failure::new(cause, msg);
        let none: Result<(), Failure> = first_route(&[], |_| async { Ok(()) }).await;
        assert_eq!(none.unwrap_err().cause(), FailureCause::BadRequest, "no silent default");
        let routes = ["a/m".to_string(), "b/m".to_string()];
        let mut tried = Vec::new();
        let second =
            first_route(&routes, |r| {
                tried.push(r.to_string());
                async move {
                    if r == "a/m" { Err(f(FailureCause::Auth, "401")) } else { Ok(r.to_string()) }
                }
            })
            .await;
        assert_eq!((second.unwrap(), tried), ("b/m".to_string(), routes.to_vec()));
        let both: Result<(), _> =
            first_route(
                &routes,
                |r| async move { Err(f(FailureCause::Auth, &format!("{r} 401"))) },
            )
            .await;
        let both = both.unwrap_err();
        assert_eq!((both.cause(), both.message.as_str()), (FailureCause::Auth, "a/m 401; b/m 401"));
        let mixed: Result<(), _> = first_route(&routes, |r| async move {
            Err(if r == "a/m" {
                f(FailureCause::Auth, "401")
            } else {
                f(FailureCause::Timeout, "slow")
            })
        })
        .await;
        assert_eq!(
            mixed.unwrap_err().cause(),
            FailureCause::Timeout,
            "a fallback may answer later"
        );
    }
}
