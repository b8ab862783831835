-- Drops two indexes that another index of the same table already serves,
-- so that every insert stops maintaining them: invoices_business is the
-- same (business_id, id) as the unique constraint invoices_business_id_id_key,
-- and payments_business_id (business_id) is that unique constraint's
-- prefix (payments_business_id_id_key).
DROP INDEX invoices_business;
DROP INDEX payments_business_id;
