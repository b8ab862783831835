ALTER TABLE payment_requests ADD CONSTRAINT payment_requests_business_id_fkey FOREIGN KEY (business_id) REFERENCES businesses (id);
ALTER TABLE payment_tokens ADD CONSTRAINT payment_tokens_business_id_fkey FOREIGN KEY (business_id) REFERENCES businesses (id);
ALTER TABLE payments ADD CONSTRAINT payments_business_id_fkey FOREIGN KEY (business_id) REFERENCES businesses (id);
ALTER TABLE notifications ADD CONSTRAINT notifications_business_id_fkey FOREIGN KEY (business_id) REFERENCES businesses (id);
ALTER TABLE recurring_plans ADD CONSTRAINT recurring_plans_business_id_fkey FOREIGN KEY (business_id) REFERENCES businesses (id);
ALTER TABLE recurring_cycles ADD CONSTRAINT recurring_cycles_business_id_fkey FOREIGN KEY (business_id) REFERENCES businesses (id);
ALTER TABLE invoices ADD CONSTRAINT invoices_business_id_fkey FOREIGN KEY (business_id) REFERENCES businesses (id);
