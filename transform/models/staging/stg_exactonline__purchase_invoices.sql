{{ config(enabled=var('exactonline__using_invoices')) }}
select
    {{ exactonline_bigint('division') }} as division,
    {{ exactonline_id('id') }} as invoice_id,
    {{ exactonline_bigint('entry_number') }} as entry_number,
    {{ exactonline_date('invoice_date') }} as invoice_date,
    {{ exactonline_date('due_date') }} as due_date,
    {{ exactonline_id('supplier') }} as account_id,
    {{ exactonline_code('journal') }} as journal_code,
    {{ exactonline_int('financial_year') }} as financial_year,
    {{ exactonline_int('financial_period') }} as financial_period,
    {{ exactonline_int('status') }} as status,
    {{ exactonline_int('type') }} as invoice_type,
    {{ exactonline_code('currency') }} as currency,
    {{ exactonline_amount('amount') }} as amount_fc,
    {{ exactonline_amount('amount_dc') }} as amount_dc,
    {{ exactonline_amount('vat_amount') }} as vat_amount_fc,
    description,
    your_ref
from {{ exactonline_live('purchase_invoices') }} as invoices
