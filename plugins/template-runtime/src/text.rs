//! The terminal rendering of a card: sections of lines in a box, words wrapped to a fixed width. Widths
//! are counted in chars, which is what a terminal shows for the Latin text and symbols cards carry.

/// Characters between the box's side borders (a card fits an 80-column terminal with room to spare).
pub const WIDTH: usize = 52;

/// A card being laid out: the first section is its heading, a rule separates each from the next.
#[derive(Debug, Default)]
pub struct Layout {
    sections: Vec<Vec<String>>,
}

impl Layout {
    /// Starts a new section (empty sections are dropped when drawn).
    pub fn section(&mut self) -> &mut Self {
        self.sections.push(Vec::new());
        self
    }

    /// Adds a paragraph, wrapped at word boundaries.
    pub fn text(&mut self, text: &str) -> &mut Self {
        let lines = wrap(text, WIDTH);
        self.current().extend(lines);
        self
    }

    /// Adds a paragraph if there is one.
    pub fn text_opt(&mut self, text: Option<&str>) -> &mut Self {
        match text.map(str::trim) {
            Some(text) if !text.is_empty() => self.text(text),
            _ => self,
        }
    }

    /// Adds items (controls, tags) separated by spaces, wrapping only between items.
    pub fn items(&mut self, items: &[String]) -> &mut Self {
        let mut lines: Vec<String> = Vec::new();
        for item in items {
            match lines.last_mut() {
                Some(line) if line.chars().count() + 1 + item.chars().count() <= WIDTH => {
                    line.push(' ');
                    line.push_str(item);
                }
                _ => lines.extend(wrap(item, WIDTH)),
            }
        }
        self.current().extend(lines);
        self
    }

    /// Adds a row of two columns, the left padded to `left_width`; the right wraps under itself.
    pub fn columns(&mut self, left: &str, left_width: usize, right: &str) -> &mut Self {
        let indent = left_width + 2;
        let right_lines = wrap(right, WIDTH.saturating_sub(indent).max(1));
        let lines = right_lines.iter().enumerate().map(|(i, line)| {
            let left = if i == 0 { left } else { "" };
            format!("{left:<left_width$}  {line}")
        });
        self.current().extend(lines.collect::<Vec<_>>());
        self
    }

    /// Draws the box.
    pub fn draw(&self) -> String {
        let rule = "─".repeat(WIDTH + 2);
        let sections: Vec<&Vec<String>> = self.sections.iter().filter(|s| !s.is_empty()).collect();
        let mut out = vec![format!("┌{rule}┐")];
        for (i, section) in sections.iter().enumerate() {
            if i > 0 {
                out.push(format!("├{rule}┤"));
            }
            out.extend(section.iter().map(|line| format!("│ {line:<WIDTH$} │")));
        }
        out.push(format!("└{rule}┘"));
        out.join("\n")
    }

    fn current(&mut self) -> &mut Vec<String> {
        if self.sections.is_empty() {
            self.sections.push(Vec::new());
        }
        self.sections.last_mut().expect("just ensured")
    }
}

/// Word-wraps `text` to `width` chars; a word longer than a line is split. Line breaks in the text are kept.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.lines() {
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            let mut word: Vec<char> = word.chars().collect();
            while word.len() > width {
                if !line.is_empty() {
                    lines.push(std::mem::take(&mut line));
                }
                lines.push(word.drain(..width).collect());
            }
            let word: String = word.into_iter().collect();
            let needed =
                if line.is_empty() { word.chars().count() } else { line.chars().count() + 1 + word.chars().count() };
            if needed > width && !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&word);
        }
        if !line.is_empty() {
            lines.push(line);
        }
    }
    lines
}

/// `m:ss`, or `h:mm:ss` from an hour on.
pub fn duration(ms: u64) -> String {
    let seconds = ms / 1000;
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_word_boundaries_and_splits_overlong_words() {
        assert_eq!(wrap("the quick brown fox", 9), ["the quick", "brown fox"]);
        assert_eq!(wrap("abcdefghij xy", 4), ["abcd", "efgh", "ij", "xy"]);
        assert_eq!(wrap("one\ntwo", 20), ["one", "two"]);
        assert!(wrap("   ", 10).is_empty());
    }

    #[test]
    fn draws_sections_in_a_box_of_fixed_width() {
        let mut layout = Layout::default();
        layout.text("Title").section().section().text("Body");
        let drawn = layout.draw();
        let lines: Vec<&str> = drawn.lines().collect();
        assert_eq!(lines.len(), 5, "{drawn}");
        assert!(lines.iter().all(|l| l.chars().count() == WIDTH + 4), "{drawn}");
        assert!(lines[1].starts_with("│ Title "));
        assert!(lines[2].starts_with('├'), "the empty section is dropped: {drawn}");
        assert!(lines[3].starts_with("│ Body "));
    }

    #[test]
    fn columns_keep_the_right_text_aligned_when_it_wraps() {
        let mut layout = Layout::default();
        let long = "word ".repeat(15);
        layout.columns("1.", 3, &long);
        let drawn = layout.draw();
        let lines: Vec<&str> = drawn.lines().collect();
        assert!(lines[1].starts_with("│ 1.   word"), "{drawn}");
        assert!(lines[2].starts_with("│      word"), "{drawn}");
    }

    #[test]
    fn items_wrap_only_between_items() {
        let items: Vec<String> = (0..12).map(|i| format!("[Item {i}: on]")).collect();
        let mut layout = Layout::default();
        layout.items(&items);
        let drawn = layout.draw();
        for line in drawn.lines().skip(1).take_while(|l| l.starts_with('│')) {
            let inner = line.trim_matches(|c| "│ ".contains(c));
            assert!(inner.starts_with('[') && inner.ends_with(']'), "{drawn}");
        }
    }

    #[test]
    fn durations_read_like_a_player() {
        assert_eq!(duration(208_000), "3:28");
        assert_eq!(duration(59_999), "0:59");
        assert_eq!(duration(3_723_000), "1:02:03");
    }
}
