//! What a migration may be: one `SELECT` over `input`, row for row. Everything else is refused
//! when the file is loaded, naming the file and the position: clauses that add, drop or
//! reorder rows, joins, aggregates, window functions and subqueries. Volatile functions are
//! refused once the query is planned (their volatility is known from the function registry).

use std::ops::ControlFlow;

use datafusion_sql::sqlparser::ast::{
    Expr, FunctionArguments, GroupByExpr, Query, SelectItem, SetExpr, Spanned, Statement, TableFactor,
    visit_expressions,
};
use datafusion_sql::sqlparser::dialect::GenericDialect;
use datafusion_sql::sqlparser::parser::Parser;
use datafusion_sql::sqlparser::tokenizer::Span;

use crate::error::SqlError;

/// The table a migration reads: the rows of the file being migrated.
pub const INPUT_TABLE: &str = "input";

/// Aggregate functions refused by name (no aggregate is registered, so the planner would only
/// say it does not know them).
const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "avg",
    "mean",
    "min",
    "max",
    "median",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "array_agg",
    "string_agg",
    "first_value",
    "last_value",
    "approx_distinct",
    "approx_median",
    "approx_percentile_cont",
    "bit_and",
    "bit_or",
    "bool_and",
    "bool_or",
    "corr",
    "covar",
    "covar_pop",
    "covar_samp",
    "grouping",
    "nth_value",
    "percentile_cont",
    "regr_slope",
];

/// Parses `text` (DataFusion's SQL dialect) and checks that it is one row-wise `SELECT ... FROM
/// input`.
///
/// # Errors
/// [`SqlError::File`] naming `location`, what is refused and where.
pub fn parse(location: &str, text: &str) -> Result<Statement, SqlError> {
    let refuse = |message: String| SqlError::File {
        location: location.to_string(),
        message,
    };
    let mut statements =
        Parser::parse_sql(&GenericDialect {}, text).map_err(|e| refuse(format!("does not parse: {e}")))?;
    if statements.len() != 1 {
        return Err(refuse(format!(
            "holds {} statements; a migration is one SELECT over `{INPUT_TABLE}`",
            statements.len()
        )));
    }
    let statement = statements.remove(0);
    let Statement::Query(query) = &statement else {
        return Err(refuse(format!(
            "{}: a migration is a SELECT over `{INPUT_TABLE}`, not another statement",
            at(statement.span())
        )));
    };
    check_query(query).map_err(|(span, what)| refuse(format!("{}: {what}", at(span))))?;
    Ok(statement)
}

/// `line L, column C` of a span's start.
fn at(span: Span) -> String {
    format!("line {}, column {}", span.start.line, span.start.column)
}

type Refusal = (Span, String);

fn row_wise(what: &str) -> String {
    format!("{what} is refused: a migration maps each row of the file to one row, in order")
}

fn check_query(query: &Query) -> Result<(), Refusal> {
    if let Some(with) = &query.with {
        return Err((with.span(), row_wise("WITH")));
    }
    if let Some(order_by) = &query.order_by {
        return Err((order_by.span(), row_wise("ORDER BY")));
    }
    if let Some(limit) = &query.limit_clause {
        return Err((limit.span(), row_wise("LIMIT")));
    }
    if let Some(fetch) = &query.fetch {
        return Err((fetch.span(), row_wise("FETCH")));
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return Err((
            query.body.span(),
            row_wise("a set operation (UNION, INTERSECT, EXCEPT or VALUES)"),
        ));
    };
    if select.distinct.is_some() {
        return Err((select.span(), row_wise("DISTINCT")));
    }
    if let Some(filter) = &select.selection {
        return Err((filter.span(), row_wise("WHERE")));
    }
    let grouped = match &select.group_by {
        GroupByExpr::All(_) => true,
        GroupByExpr::Expressions(exprs, _) => !exprs.is_empty(),
    };
    if grouped {
        return Err((select.span(), row_wise("GROUP BY")));
    }
    if let Some(having) = &select.having {
        return Err((having.span(), row_wise("HAVING")));
    }
    if let Some(qualify) = &select.qualify {
        return Err((qualify.span(), row_wise("QUALIFY")));
    }
    if let Some(window) = select.named_window.first() {
        return Err((window.span(), row_wise("WINDOW")));
    }
    match select.from.as_slice() {
        [one] if one.joins.is_empty() => match &one.relation {
            TableFactor::Table { name, .. } if name.to_string().eq_ignore_ascii_case(INPUT_TABLE) => {}
            other => {
                return Err((
                    other.span(),
                    format!("reads {other}; a migration reads only `{INPUT_TABLE}`, the file's rows"),
                ));
            }
        },
        [one] => return Err((one.joins[0].span(), row_wise("JOIN"))),
        [] => {
            return Err((
                select.span(),
                format!("has no FROM; a migration reads `FROM {INPUT_TABLE}`"),
            ));
        }
        [_, second, ..] => return Err((second.span(), row_wise("a second table (a join)"))),
    }
    for item in &select.projection {
        if let SelectItem::QualifiedWildcard(..) = item {
            continue;
        }
        check_expressions(item)?;
    }
    Ok(())
}

/// Refuses aggregates, window functions and subqueries anywhere in an item's expressions.
fn check_expressions(item: &SelectItem) -> Result<(), Refusal> {
    let found = visit_expressions(item, |expr: &Expr| {
        let refused = match expr {
            Expr::Function(f) if f.over.is_some() => Some(row_wise(&format!("the window function {}", f.name))),
            Expr::Function(f)
                if AGGREGATES.contains(&f.name.to_string().to_ascii_lowercase().as_str())
                    || matches!(&f.args, FunctionArguments::List(list) if list.duplicate_treatment.is_some()) =>
            {
                Some(row_wise(&format!("the aggregate {}", f.name)))
            }
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => Some(row_wise("a subquery")),
            Expr::Function(f) if crate::functions::is_immutable(&f.name.to_string()) == Some(false) => Some(format!(
                "{}() is refused: its result changes from call to call, and a migration must write the same output whenever it runs",
                f.name
            )),
            _ => None,
        };
        match refused {
            Some(what) => ControlFlow::Break((expr.span(), what)),
            None => ControlFlow::Continue(()),
        }
    });
    match found {
        ControlFlow::Break(refusal) => Err(refusal),
        ControlFlow::Continue(()) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(text: &str) -> String {
        parse("m/s/V2__x.sql", text).unwrap_err().to_string()
    }

    #[test]
    fn a_row_wise_select_over_input_is_taken() {
        for text in [
            "SELECT *, sqrt(x * x + y * y) AS magnitude FROM input",
            "SELECT * EXCLUDE (z) FROM input",
            "SELECT * RENAME (a AS b) FROM input",
            "SELECT * REPLACE (CAST(a AS BIGINT) AS a) FROM input;",
            "select *, case when x >= 0 then 1 else 2 end as q from INPUT",
        ] {
            parse("f", text).unwrap_or_else(|e| panic!("{text}: {e}"));
        }
    }

    #[test]
    fn each_refusal_names_the_file_what_and_where() {
        let cases = [
            (
                "SELECT count(x) AS n FROM input",
                "line 1, column 8: the aggregate count is refused",
            ),
            (
                "SELECT *, sum(x) OVER () AS s FROM input",
                "the window function sum is refused",
            ),
            (
                "SELECT * FROM input JOIN other ON input.a = other.a",
                "line 1, column 26: JOIN is refused",
            ),
            ("SELECT * FROM input, other", "a second table (a join) is refused"),
            (
                "SELECT * FROM input\nORDER BY x",
                "line 2, column 10: ORDER BY is refused",
            ),
            ("SELECT * FROM input LIMIT 10", "LIMIT is refused"),
            ("SELECT * FROM input WHERE x > 0", "line 1, column 27: WHERE is refused"),
            ("SELECT DISTINCT * FROM input", "DISTINCT is refused"),
            ("SELECT x FROM input GROUP BY x", "GROUP BY is refused"),
            ("SELECT *, (SELECT 1) AS one FROM input", "a subquery is refused"),
            ("SELECT * FROM other", "reads other; a migration reads only `input`"),
            (
                "SELECT *, random() AS r FROM input",
                "line 1, column 11: random() is refused",
            ),
            ("SELECT *, x + now() AS t FROM input", "now() is refused"),
            (
                "DELETE FROM input",
                "a migration is a SELECT over `input`, not another statement",
            ),
            ("SELECT * FROM input; SELECT * FROM input", "holds 2 statements"),
            ("SELEC * FROM input", "does not parse"),
        ];
        for (text, says) in cases {
            let err = refusal(text);
            assert!(err.starts_with("m/s/V2__x.sql: "), "{text}: {err}");
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
