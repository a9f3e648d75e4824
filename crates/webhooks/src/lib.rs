//! Inbound webhooks: `POST /api/v0/hooks/{slug}` verifies, deduplicates, filters, renders and
//! durably enqueues a workflow run, answering 202 only once the run is stored.

pub mod verify;
