-- Leaves half of each new page of invoices and recurring_plans free, so
-- that their updates can stay on the page (HOT) instead of writing a new
-- entry in each of their indexes (8 for invoices, 6 for plans). Paying an
-- invoice (OPEN → PAID) and counting a plan's cycles change no indexed
-- column, and the charging step updates a whole batch of neighbouring rows
-- in one transaction, so anything less than half left most of those
-- updates without room. The price is about twice the heap pages for these
-- two tables; existing pages are left as they are. Docs: docs/benchmarks.md.
ALTER TABLE invoices SET (fillfactor = 50);
ALTER TABLE recurring_plans SET (fillfactor = 50);
