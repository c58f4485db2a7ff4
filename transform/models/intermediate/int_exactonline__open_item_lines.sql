-- The ledger lines that make up open items: lines on the receivables (GLAccounts.Type 20) and
-- payables (22) accounts that name an invoice. The invoice's own line and its payments carry
-- the same InvoiceNumber (docs/fake-books.md, "Payments"), so an invoice is open while its lines
-- do not sum to zero; ReceivablesList / PayablesList list exactly those (same page).
select
    lines.division,
    case accounts.gl_account_type when 20 then 'receivable' else 'payable' end as open_item_kind,
    lines.account_id,
    lines.invoice_number,
    lines.transaction_date,
    lines.entry_type,
    lines.due_date,
    lines.amount_dc
from {{ ref('stg_exactonline__transaction_lines') }} as lines
inner join {{ ref('stg_exactonline__gl_accounts') }} as accounts
    on accounts.division = lines.division and accounts.gl_account_id = lines.gl_account_id
where accounts.gl_account_type in (20, 22)
    and lines.invoice_number is not null
