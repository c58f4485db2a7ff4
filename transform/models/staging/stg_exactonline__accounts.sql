-- Customers and suppliers (CRM accounts): the counterparty of ledger lines and open items.
select
    {{ exactonline_bigint('division') }} as division,
    {{ exactonline_id('id') }} as account_id,
    {{ exactonline_code('code') }} as account_code,
    name as account_name,
    status as account_status,
    is_sales,
    is_supplier,
    city,
    {{ exactonline_code('country') }} as country,
    {{ exactonline_code('currency') }} as currency,
    modified as modified_at
from {{ exactonline_live('accounts') }} as accounts
