-- The tree of reporting classes (RGS-like: Balans > Activa > Vorderingen, ...); Parent links up.
select
    {{ exactonline_bigint('division') }} as division,
    {{ exactonline_id('id') }} as gl_classification_id,
    {{ exactonline_code('code') }} as gl_classification_code,
    coalesce(description, name) as gl_classification_description,
    {{ exactonline_id('parent') }} as parent_gl_classification_id,
    -- 'debit' / 'credit' (or D / C): the side the class normally sits on.
    upper(substr(trim(balance), 1, 1)) as balance_side,
    abstract as is_abstract
from {{ exactonline_live('gl_classifications') }} as classifications
