ALTER TABLE invoices RESET (fillfactor);
ALTER TABLE recurring_plans RESET (fillfactor);
