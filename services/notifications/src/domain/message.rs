//! What notifications say, in Vietnamese.

use chrono::{Datelike, NaiveDate};

/// A task as notifications know it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSummary {
    /// "tasks/{id}".
    pub name: String,
    /// Title.
    pub title: String,
    /// Directive number, e.g. "534/TB-UBND"; empty for direct tasks.
    pub directive_number: String,
    /// Item reference, e.g. "II.4".
    pub reference: String,
    /// Lead agencies as written for people.
    pub lead: String,
    /// Due date.
    pub due: Option<NaiveDate>,
    /// Key task.
    pub key_task: bool,
}

/// A date as Vietnamese documents write it: 30/9/2024.
pub fn vn_date(date: NaiveDate) -> String {
    format!("{}/{}/{}", date.day(), date.month(), date.year())
}

fn source(task: &TaskSummary) -> String {
    match (task.directive_number.is_empty(), task.reference.is_empty()) {
        (true, _) => String::new(),
        (false, true) => format!(" (văn bản số {})", task.directive_number),
        (false, false) => format!(
            " (văn bản số {}, mục {})",
            task.directive_number, task.reference
        ),
    }
}

fn due_text(task: &TaskSummary) -> String {
    task.due
        .map(|d| format!("thời hạn {}", vn_date(d)))
        .unwrap_or_else(|| "không có thời hạn cụ thể".into())
}

fn key(task: &TaskSummary) -> &'static str {
    if task.key_task {
        "nhiệm vụ trọng tâm "
    } else {
        "nhiệm vụ "
    }
}

/// A title and a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Short title.
    pub title: String,
    /// Full text.
    pub body: String,
}

/// "Due in n working days."
pub fn due_soon(task: &TaskSummary, working_days_left: u32) -> Message {
    let due = task.due.map(vn_date).unwrap_or_default();
    Message {
        title: format!("Sắp đến hạn ({due}): {}", task.title),
        body: format!(
            "Đôn đốc: {}\"{}\"{} do {} chủ trì sẽ đến hạn vào ngày {due}, còn {working_days_left} ngày làm việc. Đề nghị khẩn trương hoàn thành và báo cáo kết quả.",
            key(task),
            task.title,
            source(task),
            task.lead
        ),
    }
}

/// "Due today."
pub fn due_today(task: &TaskSummary) -> Message {
    let due = task.due.map(vn_date).unwrap_or_default();
    Message {
        title: format!("Đến hạn hôm nay ({due}): {}", task.title),
        body: format!(
            "Đôn đốc: {}\"{}\"{} do {} chủ trì đến hạn hôm nay, ngày {due}. Đề nghị hoàn thành và báo cáo kết quả trong ngày.",
            key(task),
            task.title,
            source(task),
            task.lead
        ),
    }
}

/// "Overdue by n days."
pub fn overdue(task: &TaskSummary, days_late: i64) -> Message {
    let due = task.due.map(vn_date).unwrap_or_default();
    Message {
        title: format!("Quá hạn {days_late} ngày: {}", task.title),
        body: format!(
            "Đôn đốc: {}\"{}\"{} do {} chủ trì đã quá hạn {days_late} ngày (hạn {due}). Đề nghị báo cáo kết quả, nêu rõ lý do chậm trễ, hoặc đề nghị gia hạn.",
            key(task),
            task.title,
            source(task),
            task.lead
        ),
    }
}

/// "A task was assigned to you."
pub fn assigned(task: &TaskSummary, as_lead: bool) -> Message {
    let role = if as_lead {
        "chủ trì"
    } else {
        "phối hợp"
    };
    Message {
        title: format!("Nhiệm vụ mới: {}", task.title),
        body: format!(
            "Đơn vị được giao {role} thực hiện {}\"{}\"{}; {}.",
            key(task),
            task.title,
            source(task),
            due_text(task)
        ),
    }
}

/// A workflow change, told to the agency concerned.
pub fn workflow(task: &TaskSummary, what: &str, reason: &str) -> Message {
    let reason = if reason.trim().is_empty() {
        String::new()
    } else {
        format!(" Lý do/ghi chú: {}", reason.trim())
    };
    Message {
        title: format!("{what}: {}", task.title),
        body: format!(
            "{what}: {}\"{}\"{} do {} chủ trì; {}.{reason}",
            key(task),
            task.title,
            source(task),
            task.lead,
            due_text(task)
        ),
    }
}

/// To a subscription's owner: its webhook endpoint was disabled.
pub fn endpoint_disabled(subscription: &str, url: &str, reason: &str) -> Message {
    Message {
        title: format!("Tạm dừng gửi thông báo tới {url}"),
        body: format!(
            "Địa chỉ nhận thông báo (webhook) {url} của đăng ký {subscription} đã bị tạm dừng: {reason}. \
             Các thông báo chưa gửi được đã chuyển sang trạng thái gửi lỗi. Sau khi khắc phục, đề nghị \
             đơn vị gửi lại bằng ReplayDeliveries."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> TaskSummary {
        TaskSummary {
            name: "tasks/1".into(),
            title: "Trình HĐND tỉnh Nghị quyết".into(),
            directive_number: "534/TB-UBND".into(),
            reference: "II.4".into(),
            lead: "Sở Lao động – Thương binh và Xã hội".into(),
            due: NaiveDate::from_ymd_opt(2024, 9, 30),
            key_task: true,
        }
    }

    #[test]
    fn bodies_name_the_task_the_directive_the_lead_and_the_date() {
        let m = due_soon(&task(), 3);
        assert!(m.body.contains("534/TB-UBND"), "{}", m.body);
        assert!(m.body.contains("Sở Lao động – Thương binh và Xã hội"));
        assert!(m.body.contains("30/9/2024"));
        assert!(m.body.contains("nhiệm vụ trọng tâm"));
        assert!(overdue(&task(), 8).title.starts_with("Quá hạn 8 ngày"));
        assert!(assigned(&task(), false).body.contains("phối hợp"));
    }
}
