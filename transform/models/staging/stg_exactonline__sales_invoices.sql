{{ config(enabled=var('exactonline__using_invoices')) }}
-- sync/SalesInvoice/SalesInvoices returns a row for the invoice and one per line (key ID), all
-- with the invoice's own fields (InvoiceID, number, dates, customer): line_number 0 is the
-- invoice, whose amount_dc is its total with VAT; 1 and up are its lines, whose amounts are the
-- line's without VAT (Exact's reference; docs/streams.md, "Header and line entities").
select
    {{ exactonline_bigint('division') }} as division,
    {{ exactonline_id('id') }} as sales_invoice_row_id,
    {{ exactonline_id('invoice_id') }} as invoice_id,
    {{ exactonline_int('line_number') }} as line_number,
    {{ exactonline_bigint('invoice_number') }} as invoice_number,
    {{ exactonline_date('invoice_date') }} as invoice_date,
    {{ exactonline_date('due_date') }} as due_date,
    {{ exactonline_id('invoice_to') }} as account_id,
    invoice_to_name as account_name,
    {{ exactonline_code('journal') }} as journal_code,
    {{ exactonline_int('status') }} as status,
    {{ exactonline_int('type') }} as invoice_type,
    {{ exactonline_code('currency') }} as currency,
    {{ exactonline_amount('amount_fc') }} as amount_fc,
    {{ exactonline_amount('amount_dc') }} as amount_dc,
    {{ exactonline_amount('vat_amount_dc') }} as vat_amount_dc,
    description,
    your_ref
from {{ exactonline_live('sales_invoices') }} as invoices
