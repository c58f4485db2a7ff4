-- One row per division the tap read, with the currency its amounts (AmountDC) are in.
-- system/Divisions.Currency is the division's currency; a division whose own row has none gets
-- the currency of its lines booked at rate 1 (a line in the division's currency has
-- AmountFC = AmountDC, ExchangeRate 1: docs/fake-books.md).
with listed as (
    select
        division_code,
        division_description,
        currency,
        country,
        -- A division's own read lists it too; prefer that row.
        row_number() over (
            partition by division_code
            order by case when division = division_code then 0 else 1 end, division
        ) as preference
    from {{ ref('stg_exactonline__divisions') }}
),

line_currencies as (
    select
        division,
        currency,
        row_number() over (partition by division order by count(*) desc, currency) as rank_by_lines
    from {{ ref('stg_exactonline__transaction_lines') }}
    where exchange_rate = 1 and currency is not null
    group by division, currency
),

read_divisions as (
    select division from {{ ref('stg_exactonline__transaction_lines') }}
    union
    select division from {{ ref('stg_exactonline__gl_accounts') }}
)

select
    read_divisions.division,
    listed.division_description,
    coalesce(listed.currency, line_currencies.currency) as currency,
    listed.country
from read_divisions
left join listed
    on listed.division_code = read_divisions.division
    and listed.preference = 1
left join line_currencies
    on line_currencies.division = read_divisions.division
    and line_currencies.rank_by_lines = 1
