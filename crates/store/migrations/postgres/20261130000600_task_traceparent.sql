-- The W3C trace context (`traceparent`) of the span that enqueued the task: its first attempt
-- continues that trace as a child, a retry or rescue links to it (docs/tracing.md). NULL when
-- tracing was off or the enqueuer was in no span.
ALTER TABLE tasks ADD COLUMN traceparent TEXT;
