//! RenderTemplate: the display card accompanying an answer of Alexa, one of the documented template types,
//! rendered for a terminal. Fields a template does not use, and fields AVS may add, are ignored.

use avs_plugin_sdk::PluginError;
use serde::Deserialize;

use crate::text::Layout;

/// The template types of TemplateRuntime 1.2.
pub const TYPES: [&str; 4] = ["BodyTemplate1", "BodyTemplate2", "ListTemplate1", "WeatherTemplate"];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    token: String,
    #[serde(rename = "type")]
    kind: String,
    title: Title,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Title {
    main_title: String,
    sub_title: Option<String>,
}

/// An image structure; a terminal can only say what it shows.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Image {
    content_description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body {
    text_field: String,
    image: Option<Image>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct List {
    list_items: Vec<ListItem>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListItem {
    #[serde(default)]
    left_text_field: String,
    #[serde(default)]
    right_text_field: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Weather {
    current_weather: String,
    description: Option<String>,
    high_temperature: Temperature,
    low_temperature: Temperature,
    #[serde(default)]
    weather_forecast: Vec<Forecast>,
}

#[derive(Debug, Deserialize)]
struct Temperature {
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Forecast {
    day: String,
    #[serde(default)]
    date: String,
    high_temperature: String,
    low_temperature: String,
}

/// A RenderTemplate, parsed and rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedTemplate {
    pub token: String,
    pub text: String,
}

/// Parses a RenderTemplate payload and renders it; an unknown template type is refused by name.
pub fn render(payload: &str) -> Result<RenderedTemplate, PluginError> {
    let bad = |e: serde_json::Error| PluginError::invalid(format!("RenderTemplate: {e}"));
    let header: Header = serde_json::from_str(payload).map_err(bad)?;
    let mut layout = Layout::default();
    layout.text(&header.title.main_title).text_opt(header.title.sub_title.as_deref()).section();
    match header.kind.as_str() {
        "BodyTemplate1" | "BodyTemplate2" => {
            let body: Body = serde_json::from_str(payload).map_err(bad)?;
            if let Some(image) = body.image {
                layout.text(&format!("[image: {}]", image.content_description.as_deref().unwrap_or("untitled")));
            }
            layout.text(&body.text_field);
        }
        "ListTemplate1" => {
            let list: List = serde_json::from_str(payload).map_err(bad)?;
            let left_width = list.list_items.iter().map(|i| i.left_text_field.chars().count()).max().unwrap_or(0);
            for item in &list.list_items {
                layout.columns(&item.left_text_field, left_width, &item.right_text_field);
            }
        }
        "WeatherTemplate" => {
            let weather: Weather = serde_json::from_str(payload).map_err(bad)?;
            let now = match weather.description.as_deref() {
                Some(description) => format!("Now {} · {description}", weather.current_weather),
                None => format!("Now {}", weather.current_weather),
            };
            let (high, low) = (&weather.high_temperature.value, &weather.low_temperature.value);
            layout.text(&now).text(&format!("High {high} · Low {low}")).section();
            let day_width = weather.weather_forecast.iter().map(|f| forecast_day(f).chars().count()).max().unwrap_or(0);
            for day in &weather.weather_forecast {
                let range = format!("{} / {}", day.high_temperature, day.low_temperature);
                layout.columns(&forecast_day(day), day_width, &range);
            }
        }
        other => {
            return Err(PluginError::unsupported(format!(
                "RenderTemplate type {other:?} is not a TemplateRuntime 1.2 template (known: {})",
                TYPES.join(", ")
            )))
        }
    }
    Ok(RenderedTemplate { token: header.token, text: layout.draw() })
}

fn forecast_day(forecast: &Forecast) -> String {
    format!("{} {}", forecast.day, forecast.date).trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::schema_check;

    /// The payload of a valid example (checked against the schema by the example itself).
    fn example(file: &str) -> Value {
        let example = schema_check::example(file);
        schema_check::assert_valid("directives/RenderTemplate.json", &example["directive"]["payload"]);
        example["directive"]["payload"].clone()
    }

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(|l| l.trim_matches(|c| "│ ".contains(c)).to_string()).collect()
    }

    #[test]
    fn body_template_1_shows_title_subtitle_and_text() {
        let card = render(&example("RenderTemplate.json").to_string()).unwrap();
        assert_eq!(card.token, "card-body-1");
        let lines = lines(&card.text);
        assert_eq!(lines[1], "Who is Usain Bolt?");
        assert_eq!(lines[2], "Wikipedia");
        assert!(lines[3].starts_with('├'));
        assert_eq!(lines[4], "Usain St Leo Bolt is a Jamaican former sprinter,");
        assert_eq!(lines[5], "widely considered the greatest sprinter of all time.");
        assert!(lines[6].starts_with('└'));
    }

    #[test]
    fn body_template_2_says_what_its_image_shows() {
        let card = render(&example("RenderTemplate-body-with-image.json").to_string()).unwrap();
        let lines = lines(&card.text);
        assert_eq!(lines[1], "Mount Everest");
        assert!(lines[2].starts_with('├'), "no subtitle, no line for it: {}", card.text);
        assert_eq!(lines[3], "[image: Mount Everest at dawn]");
        assert!(lines[4].starts_with("Earth's highest mountain"));
    }

    #[test]
    fn list_template_aligns_its_items() {
        let card = render(&example("RenderTemplate-list.json").to_string()).unwrap();
        let lines = lines(&card.text);
        assert_eq!(lines[1..3], ["Shopping list", "3 items"]);
        assert_eq!(lines[4..7], ["1.  Milk", "2.  Eggs", "3.  Coffee beans"]);
    }

    #[test]
    fn weather_template_shows_now_the_range_and_the_forecast() {
        let card = render(&example("RenderTemplate-weather.json").to_string()).unwrap();
        let lines = lines(&card.text);
        assert_eq!(lines[1..3], ["Seattle", "Tuesday, June 12"]);
        assert_eq!(lines[4..6], ["Now 64° · Partly cloudy", "High 68° · Low 52°"]);
        assert_eq!(lines[7..9], ["Wed Jun 13  71° / 54°", "Thu Jun 14  63° / 50°"]);
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let mut payload = example("RenderTemplate.json");
        payload["backgroundImage"] = json!({"sources": []});
        payload["title"]["extra"] = json!(1);
        assert!(render(&payload.to_string()).is_ok());
    }

    #[test]
    fn an_unknown_template_type_is_refused_by_name() {
        let payload = json!({"token": "t", "type": "BodyTemplate9", "title": {"mainTitle": "x"}});
        let error = render(&payload.to_string()).unwrap_err();
        assert!(
            matches!(&error, PluginError::Unsupported(m) if m.contains("\"BodyTemplate9\"") && m.contains("ListTemplate1")),
            "{error:?}"
        );
    }

    #[test]
    fn a_template_without_its_content_is_invalid() {
        let payload = json!({"token": "t", "type": "ListTemplate1", "title": {"mainTitle": "x"}});
        let error = render(&payload.to_string()).unwrap_err();
        assert!(matches!(&error, PluginError::Invalid(m) if m.contains("listItems")), "{error:?}");
    }
}
