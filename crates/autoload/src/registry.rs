//! The immutable set of loaded resources that the rest of the engine queries.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use crate::error::{ErrorCategory, LoadError};
use crate::resources::{
    Agent, Mcp, Parsed, Pos, Reference, Resource, ResourceKind, Slug, SlugDecl, Tool, WebhookTrigger, Workflow,
};

/// One resource and the file it came from. Serializes as
/// `{"type": "tool", "id": "...", "file": "...", "spec": {...}}`, secrets redacted.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// Root-relative path of the source file.
    pub file: String,
    pub resource: Resource,
}

impl Serialize for Loaded {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = s.serialize_struct("Loaded", 4)?;
        out.serialize_field("type", &self.kind())?;
        out.serialize_field("id", self.resource.id())?;
        out.serialize_field("file", &self.file)?;
        out.serialize_field("spec", &self.resource)?;
        out.end()
    }
}

impl Loaded {
    pub fn kind(&self) -> ResourceKind {
        self.resource.kind()
    }
}

/// Where a webhook slug leads.
#[derive(Clone, Debug)]
struct WebhookRoute {
    workflow: String,
    trigger: usize,
}

/// Every loaded resource, by kind and case-insensitive ID, plus webhook slugs. Never mutated:
/// a reload builds a new one and swaps it in.
#[derive(Debug, Default)]
pub struct ProjectRegistry {
    by_kind: [BTreeMap<String, Arc<Loaded>>; 4],
    webhooks: BTreeMap<String, WebhookRoute>,
}

impl ProjectRegistry {
    pub fn get(&self, kind: ResourceKind, id: &str) -> Option<&Arc<Loaded>> {
        self.by_kind[kind.index()].get(&id.to_ascii_lowercase())
    }

    /// Resources of one kind, sorted by (lower-cased) ID.
    pub fn list(&self, kind: ResourceKind) -> impl ExactSizeIterator<Item = &Arc<Loaded>> {
        self.by_kind[kind.index()].values()
    }

    pub fn count(&self, kind: ResourceKind) -> usize {
        self.by_kind[kind.index()].len()
    }

    pub fn len(&self) -> usize {
        self.by_kind.iter().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn workflow(&self, id: &str) -> Option<&Workflow> {
        match &self.get(ResourceKind::Workflow, id)?.resource {
            Resource::Workflow(w) => Some(w),
            _ => None,
        }
    }

    pub fn tool(&self, id: &str) -> Option<&Tool> {
        match &self.get(ResourceKind::Tool, id)?.resource {
            Resource::Tool(t) => Some(t),
            _ => None,
        }
    }

    pub fn agent(&self, id: &str) -> Option<&Agent> {
        match &self.get(ResourceKind::Agent, id)?.resource {
            Resource::Agent(a) => Some(a),
            _ => None,
        }
    }

    pub fn mcp(&self, id: &str) -> Option<&Mcp> {
        match &self.get(ResourceKind::Mcp, id)?.resource {
            Resource::Mcp(m) => Some(m),
            _ => None,
        }
    }

    /// The workflow and trigger a webhook slug belongs to.
    pub fn webhook(&self, slug: &str) -> Option<(&Workflow, &WebhookTrigger)> {
        let route = self.webhooks.get(slug)?;
        let workflow = self.workflow(&route.workflow)?;
        let trigger = workflow.webhooks().nth(route.trigger)?;
        Some((workflow, trigger))
    }

    /// Every webhook slug, sorted.
    pub fn webhook_slugs(&self) -> impl Iterator<Item = &str> {
        self.webhooks.keys().map(String::as_str)
    }
}

/// Registers parsed files in the order given (sorted by path), so the first file in path
/// order always wins a duplicate.
#[derive(Default)]
pub(crate) struct Builder {
    registry: ProjectRegistry,
    pending: Vec<Pending>,
    slug_owner: HashMap<Slug, (String, String)>,
}

struct Pending {
    kind: ResourceKind,
    key: String,
    file: String,
    references: Vec<Reference>,
}

impl Builder {
    pub fn insert(&mut self, file: &str, parsed: Parsed) -> Result<(), LoadError> {
        let kind = parsed.resource.kind();
        let id = parsed.resource.id().clone();
        let key = id.key();
        if let Some(existing) = self.registry.by_kind[kind.index()].get(&key) {
            let msg = format!("{kind} `{id}` is already defined in {} (IDs are case-insensitive)", existing.file);
            return Err(duplicate(file, parsed.id_pos, msg));
        }
        self.claim_slugs(file, &id.key(), &parsed.slugs)?;
        self.registry.by_kind[kind.index()]
            .insert(key.clone(), Arc::new(Loaded { file: file.to_string(), resource: parsed.resource }));
        self.pending.push(Pending { kind, key, file: file.to_string(), references: parsed.references });
        Ok(())
    }

    /// All slugs of a workflow are claimed together, or none is.
    fn claim_slugs(&mut self, file: &str, workflow: &str, slugs: &[SlugDecl]) -> Result<(), LoadError> {
        for (i, decl) in slugs.iter().enumerate() {
            let clash_here = slugs[..i].iter().any(|d| d.slug == decl.slug);
            if clash_here {
                return Err(duplicate(
                    file,
                    decl.pos,
                    format!("webhook slug `{}` is used twice in this file", decl.slug),
                ));
            }
            if let Some((other_file, other_wf)) = self.slug_owner.get(&decl.slug) {
                let msg =
                    format!("webhook slug `{}` is already used by workflow `{other_wf}` in {other_file}", decl.slug);
                return Err(duplicate(file, decl.pos, msg));
            }
        }
        for decl in slugs {
            self.slug_owner.insert(decl.slug.clone(), (file.to_string(), workflow.to_string()));
        }
        Ok(())
    }

    /// Checks cross-file references. A resource with a dangling reference is dropped (and
    /// reported), then webhook routes are indexed from the workflows that remain.
    pub fn finish(mut self) -> (ProjectRegistry, Vec<LoadError>) {
        let mut errors = Vec::new();
        for p in std::mem::take(&mut self.pending) {
            let missing = p.references.iter().find(|r| self.registry.get(r.kind, r.id.as_str()).is_none());
            if let Some(r) = missing {
                let msg = format!("{} refers to {} `{}`, which is not defined", r.from, r.kind, r.id);
                errors.push(LoadError::new(&p.file, ErrorCategory::Validation, msg).at(r.pos.line, r.pos.column));
                self.registry.by_kind[p.kind.index()].remove(&p.key);
            }
        }
        errors.sort_by(|a, b| a.file.cmp(&b.file));
        self.index_webhooks();
        (self.registry, errors)
    }

    fn index_webhooks(&mut self) {
        let mut routes = BTreeMap::new();
        for loaded in self.registry.list(ResourceKind::Workflow) {
            if let Resource::Workflow(w) = &loaded.resource {
                for (i, hook) in w.webhooks().enumerate() {
                    routes.insert(hook.slug.as_str().to_string(), WebhookRoute { workflow: w.id.key(), trigger: i });
                }
            }
        }
        self.registry.webhooks = routes;
    }
}

fn duplicate(file: &str, pos: Pos, msg: String) -> LoadError {
    LoadError::new(file, ErrorCategory::Duplicate, msg).at(pos.line, pos.column)
}
