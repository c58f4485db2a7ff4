{#- The receivable and payable sides share their shape: one macro each, called with the side. -#}

{#- Exact's open items (read/financial/ReceivablesList or PayablesList): each invoice not yet
    paid in full, with what is left in `Amount`, debit positive (receivables above zero,
    payables below). Read in full: latest read only. -#}
{% macro exactonline_stage_open_items(table) %}
select
    {{ exactonline_bigint('division') }} as division,
    {{ exactonline_bigint('hid') }} as hid,
    {{ exactonline_id('account_id') }} as account_id,
    {{ exactonline_code('account_code') }} as account_code,
    account_name,
    {{ exactonline_bigint('invoice_number') }} as invoice_number,
    {{ exactonline_bigint('entry_number') }} as entry_number,
    {{ exactonline_date('invoice_date') }} as invoice_date,
    {{ exactonline_date('due_date') }} as due_date,
    {{ exactonline_code('journal_code') }} as journal_code,
    {{ exactonline_code('currency_code') }} as currency,
    {{ exactonline_amount('amount') }} as amount,
    {{ exactonline_amount('amount_in_transit') }} as amount_in_transit,
    _sdc_extracted_at
from {{ exactonline_latest_read(table) }} as open_items
{% endmacro %}

{#- Exact's ageing per account (AgingReceivablesList or AgingPayablesList): the open amount in
    four age groups (<= 30, 31 - 60, 61 - 90, > 90 days since the invoice date) as of the day
    it was read. Read in full: latest read only. -#}
{% macro exactonline_stage_ageing_list(table) %}
select
    {{ exactonline_bigint('division') }} as division,
    {{ exactonline_id('account_id') }} as account_id,
    {{ exactonline_code('account_code') }} as account_code,
    account_name,
    {{ exactonline_code('currency_code') }} as currency,
    {{ exactonline_amount('age_group1_amount') }} as age_group_1_amount,
    {{ exactonline_amount('age_group2_amount') }} as age_group_2_amount,
    {{ exactonline_amount('age_group3_amount') }} as age_group_3_amount,
    {{ exactonline_amount('age_group4_amount') }} as age_group_4_amount,
    {{ exactonline_amount('total_amount') }} as total_amount,
    _sdc_extracted_at
from {{ exactonline_latest_read(table) }} as ageing
{% endmacro %}

{#- Open items per division and counterparty as of var exactonline__ageing_as_of_date (default:
    today), in Exact's age groups by days since the invoice date: 1 "<= 30", 2 "31 - 60",
    3 "61 - 90", 4 "> 90" (AgingReceivablesList / AgingPayablesList; docs/fake-books.md).
    Amounts debit positive as in Exact's lists. `kind`: 'receivable' or 'payable'. -#}
{% macro exactonline_ageing_mart(kind) %}
with as_of as (
    select {{ exactonline_ageing_as_of_date() }} as as_of_date
),

open_items as (
    select
        items.*,
        as_of.as_of_date,
        {{ exactonline_age_group(dbt.datediff('items.invoice_date', 'as_of.as_of_date', 'day')) }} as age_group
    from {{ exactonline_open_items(kind, '(select as_of_date from as_of)') }} as items
    cross join as_of
)

select
    open_items.division,
    divisions.currency as division_currency,
    open_items.as_of_date,
    open_items.account_id,
    accounts.account_code,
    accounts.account_name,
    count(*) as open_item_count,
    sum(case when age_group = 1 then open_amount_dc else 0 end) as age_group_1_amount,
    sum(case when age_group = 2 then open_amount_dc else 0 end) as age_group_2_amount,
    sum(case when age_group = 3 then open_amount_dc else 0 end) as age_group_3_amount,
    sum(case when age_group = 4 then open_amount_dc else 0 end) as age_group_4_amount,
    sum(open_amount_dc) as total_amount,
    min(open_items.invoice_date) as oldest_invoice_date
from open_items
left join {{ ref('stg_exactonline__accounts') }} as accounts
    on accounts.division = open_items.division and accounts.account_id = open_items.account_id
left join {{ ref('int_exactonline__divisions') }} as divisions
    on divisions.division = open_items.division
group by open_items.division, divisions.currency, open_items.as_of_date, open_items.account_id,
    accounts.account_code, accounts.account_name
{% endmacro %}
