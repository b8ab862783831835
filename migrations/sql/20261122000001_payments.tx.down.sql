DROP TABLE sandbox_callbacks;
DROP TABLE sandbox_payments;
DROP TABLE sandbox_tokens;
DROP TABLE provider_callbacks;
DROP TABLE payments;
ALTER TABLE payment_requests DROP CONSTRAINT payment_requests_payment_token_fkey;
DROP TABLE payment_tokens;
DROP TABLE payment_requests;
DROP TABLE provider_settings;
