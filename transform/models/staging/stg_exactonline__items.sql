select
    {{ exactonline_bigint('division') }} as division,
    {{ exactonline_id('id') }} as item_id,
    {{ exactonline_code('code') }} as item_code,
    description as item_description,
    {{ exactonline_code('item_group_code') }} as item_group_code,
    item_group_description,
    {{ exactonline_id('gl_revenue') }} as revenue_gl_account_id,
    {{ exactonline_id('gl_costs') }} as costs_gl_account_id,
    {{ exactonline_amount('cost_price_standard') }} as cost_price_standard,
    is_sales_item,
    is_purchase_item,
    is_stock_item
from {{ exactonline_live('items') }} as items
