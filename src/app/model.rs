//! The embedded model of a process: which GGUF file its routes name, loaded once at start, and
//! the threads it computes on. `scriptorium model fetch` lives in `fetch`.

use super::AppConfig;
use scriptorium_worker::providers::{LocalModel, Protocol, ProviderConfig, Route};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The embedded providers of `cfg` (the built-in `embedded` and any configured ones).
fn embedded_providers(cfg: &AppConfig) -> Vec<(String, ProviderConfig)> {
    let mut all = scriptorium_worker::providers::builtin_providers();
    all.extend(cfg.models.providers.clone());
    all.into_iter().filter(|(_, p)| p.protocol == Protocol::Embedded).collect()
}

/// Whether a route's model part names a file rather than a configured name.
fn is_path(model: &str) -> bool {
    model.ends_with(".gguf") || model.contains('/') || model.contains(std::path::MAIN_SEPARATOR)
}

/// A route's model given as a file (`--provider embedded --model path/to.gguf`): registered
/// under its file name in the provider's `models`, and the route rewritten to that name, so
/// books and records name the model, not the directory it sits in.
pub fn name_file_route(cfg: &mut AppConfig, route: &str) -> anyhow::Result<String> {
    let r = Route::parse(route);
    let Some((_, pc)) = embedded_providers(cfg).into_iter().find(|(n, _)| *n == r.provider) else {
        return Ok(route.to_string());
    };
    if !is_path(&r.model) {
        return Ok(route.to_string());
    }
    let path =
        std::fs::canonicalize(&r.model).map_err(|e| anyhow::anyhow!("--model {}: {e}", r.model))?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .ok_or_else(|| anyhow::anyhow!("--model {}: not a file name", r.model))?;
    let mut pc = cfg.models.providers.get(&r.provider).cloned().unwrap_or(pc);
    pc.models.insert(name.clone(), path);
    cfg.models.providers.insert(r.provider.clone(), pc);
    Ok(format!("{}/{name}", r.provider))
}

/// The one embedded model (provider, name, file) the routes of `routes` name, else the one the
/// config's embedded provider names (its `default_model`, or its only model). Several: refused,
/// a process holds one model.
pub fn wanted(
    cfg: &AppConfig,
    routes: &[String],
) -> anyhow::Result<Option<(ProviderConfig, String, PathBuf)>> {
    let providers = embedded_providers(cfg);
    let mut found: Vec<(ProviderConfig, String, PathBuf)> = Vec::new();
    let want = |found: &mut Vec<(ProviderConfig, String, PathBuf)>,
                pc: &ProviderConfig,
                name: &str|
     -> anyhow::Result<()> {
        let path = match pc.models.get(name) {
            Some(p) => p.clone(),
            None if is_path(name) => PathBuf::from(name),
            None => anyhow::bail!(
                "embedded model {name:?}: not in [models.providers.embedded] models (known: {}), and not a .gguf file",
                pc.models.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        };
        if !found.iter().any(|(_, n, _)| n == name) {
            found.push((pc.clone(), name.to_string(), path));
        }
        Ok(())
    };
    for route in routes {
        let r = Route::parse(route);
        if let Some((_, pc)) = providers.iter().find(|(n, _)| *n == r.provider) {
            let name = if r.model.is_empty() { default_name(pc) } else { Some(r.model.clone()) };
            if let Some(name) = name {
                want(&mut found, pc, &name)?;
            }
        }
    }
    if found.is_empty() {
        for (_, pc) in providers.iter().filter(|(n, _)| cfg.models.providers.contains_key(n)) {
            if let Some(name) = default_name(pc) {
                want(&mut found, pc, &name)?;
            }
        }
    }
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => anyhow::bail!(
            "the routes name several embedded models ({}): a process holds one",
            found.iter().map(|f| f.1.as_str()).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn default_name(pc: &ProviderConfig) -> Option<String> {
    if !pc.default_model.is_empty() {
        return Some(pc.default_model.clone());
    }
    (pc.models.len() == 1).then(|| pc.models.keys().next().cloned()).flatten()
}

/// Loads the embedded model the routes (or the config) name, on a blocking thread.
pub async fn load(
    cfg: &AppConfig,
    routes: &[String],
) -> anyhow::Result<Option<Arc<dyn LocalModel>>> {
    let Some((pc, name, path)) = wanted(cfg, routes)? else { return Ok(None) };
    load_file(&pc, &name, &path).await.map(Some)
}

#[cfg(feature = "embedded")]
async fn load_file(
    pc: &ProviderConfig,
    name: &str,
    path: &Path,
) -> anyhow::Result<Arc<dyn LocalModel>> {
    let mut settings = scriptorium_embedded::EmbeddedSettings::new(name, path);
    settings.requantize = pc.requantize;
    settings.context_window = pc.context_window;
    eprintln!("loading the embedded model {name} ({})", path.display());
    let model =
        tokio::task::spawn_blocking(move || scriptorium_embedded::EmbeddedModel::load(settings))
            .await??;
    Ok(Arc::new(model))
}

#[cfg(not(feature = "embedded"))]
async fn load_file(
    _: &ProviderConfig,
    name: &str,
    _: &Path,
) -> anyhow::Result<Arc<dyn LocalModel>> {
    anyhow::bail!(
        "embedded model {name}: this binary was built without the `embedded` feature (build with default features)"
    )
}

/// Sets the threads candle computes on from the embedded provider's `threads`
/// (`CANDLE_NUM_THREADS`, read by candle once), unless the environment already says.
///
/// Call this before any other thread exists: it changes the process environment.
pub fn set_threads(cfg: &AppConfig) {
    let threads = embedded_providers(cfg).into_iter().find_map(|(_, p)| p.threads);
    if let Some(n) = threads
        && std::env::var_os("CANDLE_NUM_THREADS").is_none()
    {
        // SAFETY: called from `main` before the runtime or any other thread starts, so no
        // other thread can read the environment concurrently.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", n.to_string()) };
    }
}

/// Every route the coordinator may send `briefs`' steps to: the config's and the briefs' own.
pub fn routes(cfg: &AppConfig, briefs: &[scriptorium_proto::v1::BookBrief]) -> Vec<String> {
    let r = &cfg.coordinator.routes;
    let mut all = vec![r.default.clone()];
    all.extend(r.per_kind.values().cloned());
    all.extend(r.fallbacks.iter().cloned());
    all.extend(r.fallbacks_per_kind.values().flatten().cloned());
    for b in briefs {
        all.extend(b.models.values().cloned());
        all.extend(b.fallbacks.iter().cloned());
    }
    all
}

/// The worker settings of a process holding `model`: its pools hold one step per kind, since
/// the model answers one request at a time (a pool's other agents would only hold steps other
/// workers could be running).
pub fn hold(
    wcfg: &mut scriptorium_worker::WorkerConfig,
    model: Option<Arc<dyn LocalModel>>,
    pools_given: bool,
) {
    if model.is_some() && !pools_given {
        wcfg.pools.values_mut().for_each(|size| *size = (*size).min(1));
    }
    wcfg.embedded_model = model;
}
