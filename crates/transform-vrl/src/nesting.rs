//! How deep a VRL program nests, measured on its text before it is compiled.
//!
//! VRL's parser, compiler and runtime recurse once per nested bracket and
//! once per operator of a chain (`1 + 1 + … + 1` is a tree as deep as the
//! chain is long), so a program nested a few thousand levels overflows the
//! thread's stack and aborts the whole process, a running one too on a
//! reload (reliability review 2026-12, M1). The limits here are far beyond
//! any hand-written program and well inside what a 2 MiB stack holds.

/// The deepest bracket nesting (`(`, `[`, `{`) accepted.
pub const MAX_BRACKET_DEPTH: usize = 64;

/// The most operators accepted in one chain (one bracket level of one statement).
pub const MAX_OPERATOR_CHAIN: usize = 128;

/// Where a program nests past the limits: `(line, column, what)`, 1-based.
pub fn check(program: &str) -> Result<(), (usize, usize, String)> {
    let mut chains: Vec<usize> = vec![0];
    let (mut line, mut column) = (1, 0);
    let mut chars = program.chars().peekable();
    let mut previous = '\n';
    while let Some(c) = chars.next() {
        column += 1;
        if c == '\n' {
            line += 1;
            column = 0;
        }
        match c {
            '#' => {
                // A comment runs to the end of the line.
                while chars.peek().is_some_and(|n| *n != '\n') {
                    chars.next();
                }
            }
            '"' => skip_string(&mut chars, '"', true, &mut line, &mut column),
            '\'' if matches!(previous, 's' | 'r' | 't') => {
                skip_string(&mut chars, '\'', false, &mut line, &mut column);
            }
            '(' | '[' | '{' => {
                chains.push(0);
                if chains.len() - 1 > MAX_BRACKET_DEPTH {
                    return Err((
                        line,
                        column,
                        format!("brackets nest more than {MAX_BRACKET_DEPTH} levels deep"),
                    ));
                }
            }
            ')' | ']' | '}' if chains.len() > 1 => {
                chains.pop();
            }
            '\n' | ';' | ',' => {
                if let Some(top) = chains.last_mut() {
                    *top = 0;
                }
            }
            '+' | '-' | '*' | '/' | '%' | '<' | '>' | '&' | '|' | '?' | '=' | '!' => {
                // A two-character operator (`==`, `??`, `&&`) counts once.
                if chars.peek().is_some_and(|n| "=&|?>".contains(*n)) {
                    chars.next();
                    column += 1;
                }
                if let Some(top) = chains.last_mut() {
                    *top += 1;
                    if *top > MAX_OPERATOR_CHAIN {
                        return Err((
                            line,
                            column,
                            format!("more than {MAX_OPERATOR_CHAIN} operators in one expression"),
                        ));
                    }
                }
            }
            _ => {}
        }
        previous = c;
    }
    Ok(())
}

/// Skip a string literal up to its closing `quote` (`\` escapes in `"…"`;
/// in raw `s'…'`, `r'…'` and `t'…'` only `\'`).
fn skip_string(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    quote: char,
    escapes: bool,
    line: &mut usize,
    column: &mut usize,
) {
    while let Some(c) = chars.next() {
        *column += 1;
        if c == '\n' {
            *line += 1;
            *column = 0;
        }
        if c == '\\' {
            if escapes || chars.peek() == Some(&quote) {
                chars.next();
                *column += 1;
            }
        } else if c == quote {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_programs_pass_and_deep_ones_are_found_where_they_go_too_deep() {
        let program = include_str!("../../../pipelines/vrl/ecs.vrl");
        check(program).expect("the shipped mapping is well within the limits");
        let deep = format!(".x = {}1{}", "(".repeat(2000), ")".repeat(2000));
        let (line, column, what) = check(&deep).expect_err("too deep");
        assert_eq!((line, column), (1, 6 + MAX_BRACKET_DEPTH));
        assert!(what.contains("nest more than 64"), "{what}");
        let chain = format!(".x = 1{}", " + 1".repeat(1000));
        assert!(check(&chain).expect_err("too long").2.contains("operators"));
        // Brackets and operators inside strings and comments do not count.
        let quoted = format!(
            ".x = \"{}\" # {}\n.y = s'{}'\n.z = r'{}'",
            "((((+".repeat(100),
            "(((".repeat(100),
            "[[[".repeat(100),
            "+".repeat(300)
        );
        check(&quoted).expect("text is not nesting");
        // A chain ends with its statement.
        let many = ".a = 1 + 1\n".repeat(1000);
        check(&many).expect("many short statements");
    }
}
