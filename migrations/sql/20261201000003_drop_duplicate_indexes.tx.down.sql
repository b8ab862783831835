CREATE INDEX invoices_business ON invoices (business_id, id);
CREATE INDEX payments_business_id ON payments (business_id);
