{{ config(enabled=var('exactonline__using_invoices')) }}
select
    {{ exactonline_bigint('division') }} as division,
    {{ exactonline_id('id') }} as purchase_invoice_line_id,
    {{ exactonline_id('invoice_id') }} as invoice_id,
    {{ exactonline_int('line_number') }} as line_number,
    {{ exactonline_id('item') }} as item_id,
    description,
    {{ exactonline_amount('quantity') }} as quantity,
    {{ exactonline_amount('unit_price') }} as unit_price,
    {{ exactonline_amount('amount') }} as amount_fc,
    {{ exactonline_amount('amount_dc') }} as amount_dc,
    {{ exactonline_code('vat_code') }} as vat_code,
    {{ exactonline_amount('vat_amount') }} as vat_amount_fc
from {{ exactonline_live('purchase_invoice_lines') }} as lines
