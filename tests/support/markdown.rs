//! Reading Markdown pages in tests (README.md, docs/): the fenced code
//! blocks that the tests compile and run as written.

/// The fenced blocks of `lang` ("```c" ... "```") in `text`, in order;
/// with `stop_at_heading`, only those before the first "## " heading that
/// lies outside a block.
pub fn fenced_blocks(text: &str, lang: &str, stop_at_heading: bool) -> Vec<String> {
    let opening = format!("```{lang}");
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if stop_at_heading && line.starts_with("## ") && current.is_none() {
            break;
        }
        match &mut current {
            None if line.trim_end() == opening => current = Some(String::new()),
            Some(block) if line.trim_end() == "```" => {
                out.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    out
}
