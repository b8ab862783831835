DROP TABLE usage_event_ids;
DROP TABLE usage_events;
DROP TABLE meters;
