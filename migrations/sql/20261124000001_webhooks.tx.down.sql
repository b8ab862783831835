DROP TABLE notifications;
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TRIGGER events_webhook_queue ON events;
DROP FUNCTION webhook_queue_event();
DROP TABLE webhook_event_queue;
DROP TABLE webhook_endpoints;
DROP TABLE webhook_settings;
