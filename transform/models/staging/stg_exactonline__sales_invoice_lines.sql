{{ config(enabled=var('exactonline__using_invoices')) }}
select
    {{ exactonline_bigint('division') }} as division,
    {{ exactonline_id('id') }} as sales_invoice_line_id,
    {{ exactonline_id('invoice_id') }} as invoice_id,
    {{ exactonline_int('line_number') }} as line_number,
    {{ exactonline_id('item') }} as item_id,
    {{ exactonline_code('item_code') }} as item_code,
    {{ exactonline_id('gl_account') }} as gl_account_id,
    description,
    {{ exactonline_amount('quantity') }} as quantity,
    {{ exactonline_amount('unit_price') }} as unit_price,
    {{ exactonline_amount('amount_fc') }} as amount_fc,
    {{ exactonline_amount('amount_dc') }} as amount_dc,
    {{ exactonline_code('vat_code') }} as vat_code,
    {{ exactonline_amount('vat_amount_dc') }} as vat_amount_dc
from {{ exactonline_live('sales_invoice_lines') }} as lines
