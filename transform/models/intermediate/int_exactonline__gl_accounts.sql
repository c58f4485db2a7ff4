-- Every G/L account with its class in the reporting scheme (the division's main scheme unless
-- var exactonline__gl_scheme_code names one) and whether it takes earlier years' results.
with schemes as (
    select division, gl_scheme_id
    from {{ ref('stg_exactonline__gl_schemes') }}
    {% if var('exactonline__gl_scheme_code') %}
    where gl_scheme_code = '{{ var("exactonline__gl_scheme_code") }}'
    {% else %}
    where is_main
    {% endif %}
),

mappings as (
    select mappings.division, mappings.gl_account_id, mappings.gl_classification_id
    from {{ ref('stg_exactonline__gl_account_classification_mappings') }} as mappings
    inner join schemes
        on schemes.division = mappings.division and schemes.gl_scheme_id = mappings.gl_scheme_id
),

retained_earnings as (
    -- Exact carries a closed year's result to the retained-earnings account (GLAccounts.Type
    -- 52, "Retained earnings"); the opening balances show it there (docs/fake-books.md).
    select division, min(gl_account_code) as gl_account_code
    from {{ ref('stg_exactonline__gl_accounts') }}
    {% if var('exactonline__retained_earnings_gl_account_code') %}
    where gl_account_code = '{{ var("exactonline__retained_earnings_gl_account_code") }}'
    {% else %}
    where gl_account_type = 52
    {% endif %}
    group by division
)

select
    accounts.division,
    accounts.gl_account_id,
    accounts.gl_account_code,
    accounts.gl_account_description,
    accounts.gl_account_type,
    accounts.gl_account_type_description,
    accounts.balance_type,
    accounts.balance_side,
    retained_earnings.gl_account_code is not null as is_retained_earnings,
    paths.gl_classification_code,
    paths.gl_classification_description,
    paths.level_1_classification_code,
    paths.level_1_classification_description,
    paths.level_1_balance_side,
    paths.root_classification_code,
    paths.root_classification_description
from {{ ref('stg_exactonline__gl_accounts') }} as accounts
left join mappings
    on mappings.division = accounts.division and mappings.gl_account_id = accounts.gl_account_id
left join {{ ref('int_exactonline__gl_classification_paths') }} as paths
    on paths.division = mappings.division and paths.gl_classification_id = mappings.gl_classification_id
left join retained_earnings
    on retained_earnings.division = accounts.division
    and retained_earnings.gl_account_code = accounts.gl_account_code
