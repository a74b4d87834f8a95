//! Document-level rules: numbering forms, lead inheritance, splitting, artefacts,
//! blank numbers and days, and the .docx reader.

use std::io::Write as _;

use chrono::NaiveDate;
use dondoc_docparse::fold::fold_name;
use dondoc_docparse::{DocumentKind, ParsedTask, Recurrence, docx_to_text, parse_docx, parse_text};

fn date(y: i32, m: u32, d: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, d)
}

const HEAD: &str = "ỦY BAN NHÂN DÂN\nTỈNH AN GIANG\n-------\nCỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM\nĐộc lập - Tự do - Hạnh phúc\n---------\nSố: 120/TB-UBND\n\nAn Giang, ngày 10 tháng 3 năm 2025\n\nTHÔNG BÁO\nKết luận của Chủ tịch UBND tỉnh\n\nChủ tịch UBND tỉnh kết luận như sau:\n\n";
const TAIL: &str =
    "\n\nNơi nhận:\n- Như trên;\n- Lưu: VT.\n\nKT. CHỦ TỊCH\nPHÓ CHỦ TỊCH\n\nNguyễn Văn A\n";

fn doc(body: &str) -> Vec<ParsedTask> {
    parse_text(&format!("{HEAD}{body}{TAIL}")).tasks
}

fn leads(t: &ParsedTask) -> Vec<String> {
    t.lead.iter().map(|l| fold_name(l)).collect()
}

fn refs(ts: &[ParsedTask]) -> Vec<&str> {
    ts.iter().map(|t| t.reference.as_str()).collect()
}

#[test]
fn roman_arabic_and_letters() {
    let ts = doc(
        "I. Nhiệm vụ chung\n\n1. Sở Tài chính chủ trì rà soát kinh phí, hoàn thành trước ngày 30/4/2025.\n\n2. Sở Y tế tập trung:\n\na) Kiểm tra các cơ sở khám bệnh;\n\nb) Báo cáo kết quả trước ngày 15/5/2025.\n\nII. Tổ chức thực hiện\n\n1) Văn phòng UBND tỉnh theo dõi, đôn đốc.",
    );
    assert_eq!(refs(&ts), vec!["I.1", "I.2.a", "I.2.b", "II.1"]);
    assert_eq!(leads(&ts[0]), vec![fold_name("Sở Tài chính")]);
    assert_eq!(ts[0].due, date(2025, 4, 30));
    assert_eq!(leads(&ts[1]), vec![fold_name("Sở Y tế")]);
    assert_eq!(ts[1].due, None);
    assert_eq!(ts[2].due, date(2025, 5, 15));
    assert_eq!(leads(&ts[3]), vec![fold_name("Văn phòng UBND tỉnh")]);
}

#[test]
fn letters_with_dots_and_nested_arabic() {
    let ts = doc(
        "1. Giao Sở Xây dựng:\n1.1. Rà soát quy hoạch.\n1.2. Trình UBND tỉnh trong Quý II/2025.\n2. Giao Công an tỉnh:\na. Kiểm tra.\nb. Báo cáo trước ngày 05.06.2025.",
    );
    assert_eq!(refs(&ts), vec!["1.1", "1.2", "2.a", "2.b"]);
    assert_eq!(ts[1].due, date(2025, 6, 30));
    assert_eq!(leads(&ts[2]), vec![fold_name("Công an tỉnh")]);
    assert_eq!(ts[3].due, date(2025, 6, 5));
}

#[test]
fn bullets_dash_plus_and_dot() {
    let ts = doc(
        "1. Sở Giáo dục và Đào tạo thực hiện các nội dung sau:\n- Rà soát đội ngũ giáo viên:\n+ Tổng hợp số liệu trước ngày 20/3/2025;\n+ Gửi Sở Nội vụ.\n- Báo cáo UBND tỉnh.\n2. Sở Y tế:\n• Tổ chức tập huấn.\n• Kiểm tra.",
    );
    assert_eq!(refs(&ts), vec!["1-1-1", "1-1-2", "1-2", "2-1", "2-2"]);
    for t in &ts[..3] {
        assert_eq!(
            leads(t),
            vec![fold_name("Sở Giáo dục và Đào tạo")],
            "{}",
            t.reference
        );
    }
    assert_eq!(leads(&ts[4]), vec![fold_name("Sở Y tế")]);
    assert_eq!(ts[0].due, date(2025, 3, 20));
}

#[test]
fn heading_names_the_lead_for_everything_under_it() {
    let ts = doc(
        "II. Nhiệm vụ trọng tâm\n\nĐể thực hiện tốt nhiệm vụ, Sở Nội vụ tập trung thực hiện một số nhiệm vụ cụ thể sau:\n\n1. Rà soát biên chế.\n\n2. Hoàn thành đề án trong tháng 6/2025.\n\n3. Giao Sở Tài chính bố trí kinh phí.",
    );
    assert_eq!(ts.len(), 3);
    assert_eq!(leads(&ts[0]), vec![fold_name("Sở Nội vụ")]);
    assert_eq!(leads(&ts[1]), vec![fold_name("Sở Nội vụ")]);
    assert_eq!(ts[1].due, date(2025, 6, 30));
    assert_eq!(leads(&ts[2]), vec![fold_name("Sở Tài chính")]);
}

#[test]
fn giao_heading_form() {
    let ts = doc(
        "1. Giao Sở Y tế\nKhẩn trương kiểm tra các cơ sở. Thời gian hoàn thành trước ngày 31/5/2025.\n2. Giao Ủy ban nhân dân các huyện, thị xã, thành phố\n- Phối hợp thực hiện.\n- Báo cáo kết quả.",
    );
    assert_eq!(ts.len(), 3);
    assert_eq!(leads(&ts[0]), vec![fold_name("Sở Y tế")]);
    assert_eq!(ts[0].due, date(2025, 5, 31));
    assert_eq!(
        leads(&ts[1]),
        vec![fold_name("Ủy ban nhân dân các huyện, thị xã, thành phố")]
    );
    assert_eq!(ts[2].reference, "2-2");
}

#[test]
fn giao_chu_tri_phoi_hop_and_several_leads() {
    let ts = doc(
        "1. Giao Sở Công Thương chủ trì, phối hợp với Sở Tài chính, Công an tỉnh, UBND các huyện, thị xã, thành phố kiểm tra thị trường.\n\n2. Giao Sở Nội vụ, Sở Tư pháp theo chức năng, nhiệm vụ được giao tham mưu UBND tỉnh.",
    );
    assert_eq!(leads(&ts[0]), vec![fold_name("Sở Công Thương")]);
    let co: Vec<String> = ts[0].coordinating.iter().map(|c| fold_name(c)).collect();
    assert_eq!(
        co,
        vec![
            fold_name("Sở Tài chính"),
            fold_name("Công an tỉnh"),
            fold_name("UBND các huyện, thị xã, thành phố")
        ]
    );
    assert_eq!(
        leads(&ts[1]),
        vec![fold_name("Sở Nội vụ"), fold_name("Sở Tư pháp")]
    );
}

#[test]
fn group_leads_are_kept_as_written() {
    let ts = doc(
        "1. Yêu cầu các sở, ban, ngành, UBND các huyện, thị xã, thành phố tăng cường kiểm tra.",
    );
    assert_eq!(
        ts[0].lead,
        vec!["Các sở, ban, ngành", "UBND các huyện, thị xã, thành phố"]
    );
}

#[test]
fn follow_up_sentence_is_a_task_of_its_own() {
    let ts = doc(
        "1. Các sở, ngành rà soát và gửi báo cáo về Sở Tư pháp trước ngày 05/12/2025. Trên cơ sở đó, Sở Tư pháp tổng hợp, báo cáo UBND tỉnh trước ngày 10/12/2025.\n\nGiao Sở Tài chính chủ trì bố trí kinh phí.",
    );
    assert_eq!(refs(&ts), vec!["1+1", "1+2", "1+3"]);
    assert_eq!(ts[0].due, date(2025, 12, 5));
    assert_eq!(leads(&ts[1]), vec![fold_name("Sở Tư pháp")]);
    assert_eq!(ts[1].due, date(2025, 12, 10));
    assert_eq!(leads(&ts[2]), vec![fold_name("Sở Tài chính")]);
    assert_eq!(ts[2].due, None);
}

#[test]
fn line_breaks_mid_sentence_and_crawl_artefacts() {
    let ts = doc(
        "**1. Về công tác\nquản lý**\n|\n1.1. Giao Sở Nông nghiệp\nvà Môi trường\nKhẩn trương chia sẻ dữ liệu đến các địa phương. Thời gian hoàn thành **trước ngày 05 tháng 12\nnăm 2025**.\n|\n1.2. Giao Công an\ntỉnh\nChỉ đạo Công an các xã phối hợp.",
    );
    assert_eq!(refs(&ts), vec!["1.1", "1.2"]);
    assert_eq!(
        leads(&ts[0]),
        vec![fold_name("Sở Nông nghiệp và Môi trường")]
    );
    assert_eq!(ts[0].due, date(2025, 12, 5));
    assert_eq!(
        ts[0].due_text.as_deref(),
        Some("trước ngày 05 tháng 12 năm 2025")
    );
    assert!(!ts[0].text.contains('*'));
    assert_eq!(leads(&ts[1]), vec![fold_name("Công an tỉnh")]);
}

#[test]
fn no_deadline_words_give_no_date() {
    let ts = doc(
        "1. Sở Y tế thường xuyên kiểm tra.\n2. Sở Y tế khẩn trương triển khai.\n3. Sở Y tế triển khai theo kế hoạch, kịp thời báo cáo.",
    );
    assert_eq!(ts.len(), 3);
    assert!(
        ts.iter()
            .all(|t| t.due.is_none() && t.due_text.is_none() && t.recurrence.is_none())
    );
}

#[test]
fn recurrences_in_documents() {
    let ts = doc(
        "1. Sở Tài chính báo cáo trước ngày 15 hằng tháng.\n2. Sở Nội vụ tổng hợp trước ngày 25/12 hàng năm.",
    );
    assert_eq!(ts[0].due, None);
    assert_eq!(ts[0].recurrence, Some(Recurrence::Monthly { day: 15 }));
    assert_eq!(
        ts[1].recurrence,
        Some(Recurrence::Yearly { month: 12, day: 25 })
    );
    let j = dondoc_docparse::to_fixture_json(
        "x",
        &parse_text(&format!(
            "{HEAD}1. Sở Tài chính báo cáo trước ngày 15 hằng tháng.{TAIL}"
        )),
    );
    assert_eq!(
        j["tasks"][0]["recurrence"],
        serde_json::json!({"every": "month", "day": 15})
    );
}

#[test]
fn relative_deadline_uses_issue_date_only_when_known() {
    let ts = doc("1. Sở Xây dựng hoàn thành trong 30 ngày kể từ ngày ký.");
    assert_eq!(ts[0].due, date(2025, 4, 9));
    let draft = HEAD.replace("ngày 10 tháng 3", "ngày    tháng 3");
    let d = parse_text(&format!(
        "{draft}1. Sở Xây dựng hoàn thành trong 30 ngày kể từ ngày ký.{TAIL}"
    ));
    assert_eq!(d.document.issue_date, None);
    assert_eq!(d.tasks[0].due, None);
    assert!(!d.tasks[0].warnings.is_empty());
}

#[test]
fn missing_year_takes_issue_year_with_warning() {
    let ts = doc("1. Sở Xây dựng báo cáo trước ngày 15/12.");
    assert_eq!(ts[0].due, date(2025, 12, 15));
    assert!(ts[0].warnings.iter().any(|w| w.contains("no year")));
}

#[test]
fn invalid_date_is_null_with_warning() {
    let ts = doc("1. Sở Xây dựng báo cáo trước ngày 31/2/2025.");
    assert_eq!(ts[0].due, None);
    assert!(ts[0].warnings.iter().any(|w| w.contains("invalid")));
}

#[test]
fn blank_number_and_day_in_a_draft() {
    let d = parse_text(
        "Số: /TB-UBND\n\nQuảng Ngãi, ngày tháng 9 năm 2024\n\nTHÔNG BÁO\n\nKết luận\n\nI. Nhiệm vụ\n\n1. Giao Sở Y tế kiểm tra.\n\nTL. CHỦ TỊCH\nKT. CHÁNH VĂN PHÒNG\nPHÓ CHÁNH VĂN PHÒNG\n\nLê Văn B",
    );
    assert_eq!(d.document.number, None);
    assert_eq!(d.document.symbol.as_deref(), Some("TB-UBND"));
    assert_eq!(d.document.issue_date, None);
    assert_eq!(
        d.document.issue_date_text.as_deref(),
        Some("ngày tháng 9 năm 2024")
    );
    let s = d.document.signer.unwrap_or_else(|| panic!("no signer"));
    assert_eq!(s.capacity, vec!["TL. CHỦ TỊCH", "KT. CHÁNH VĂN PHÒNG"]);
    assert_eq!(s.name.as_deref(), Some("Lê Văn B"));
}

#[test]
fn header_of_a_full_document() {
    let d = parse_text(&format!("{HEAD}1. Sở Y tế kiểm tra.{TAIL}"));
    assert_eq!(d.document.kind, DocumentKind::ThongBao);
    assert_eq!(d.document.kind.as_str(), "thong_bao");
    assert_eq!(d.document.number.as_deref(), Some("120/TB-UBND"));
    assert_eq!(d.document.issue_date, date(2025, 3, 10));
    assert_eq!(d.document.place.as_deref(), Some("An Giang"));
    assert_eq!(
        fold_name(d.document.issuer.as_deref().unwrap_or("")),
        fold_name("UBND tỉnh An Giang")
    );
    assert!(d.recipients.is_empty(), "{:?}", d.recipients);
}

#[test]
fn evaluation_sections_and_closing_lines_are_not_tasks() {
    let ts = doc(
        "I. Đánh giá chung\n\nTrong năm 2024, Sở Y tế đã hoàn thành các nhiệm vụ. UBND tỉnh ghi nhận, biểu dương.\n\nII. Nhiệm vụ\n\n1. Sở Y tế kiểm tra.\n\nNay thông báo để các cơ quan biết, thực hiện./.",
    );
    assert_eq!(refs(&ts), vec!["II.1"]);
}

#[test]
fn a_report_has_no_tasks() {
    let d = parse_text(
        "BÁO CÁO\nKết quả thực hiện nhiệm vụ quý I năm 2025\n\n1. Sở Y tế đã hoàn thành kiểm tra trước ngày 30/3/2025.\n2. Dự kiến hoàn thành trong Quý II/2025.",
    );
    assert_eq!(d.document.kind, DocumentKind::BaoCao);
    assert!(d.tasks.is_empty());
}

#[test]
fn single_addressee_is_the_default_lead() {
    let d = parse_text(
        "ỦY BAN NHÂN DÂN\nTỈNH BÌNH ĐỊNH\n------\nSố: 55/UBND-KT\nV/v rà soát dự án\n\nBình Định, ngày 02 tháng 4 năm 2025\n\nKính gửi: Sở Xây dựng.\n\nỦy ban nhân dân tỉnh có ý kiến như sau:\n\n1. Rà soát các dự án chậm tiến độ, báo cáo trước ngày 20/4/2025.\n\n2. Tiếp tục theo dõi.\n\nNơi nhận:\n- Như trên;\n- Lưu: VT.\n\nTM. ỦY BAN NHÂN DÂN\nCHỦ TỊCH\n\nTrần Văn C",
    );
    assert_eq!(d.document.kind, DocumentKind::CongVan);
    assert_eq!(d.recipients, vec!["Sở Xây dựng"]);
    assert_eq!(d.tasks.len(), 2);
    assert_eq!(d.tasks[0].lead, vec!["Sở Xây dựng"]);
    assert_eq!(d.tasks[0].due, date(2025, 4, 20));
    assert!(d.tasks[0].warnings.iter().any(|w| w.contains("addressee")));
}

#[test]
fn never_panics_on_odd_input() {
    for t in [
        "",
        "\n\n\n",
        "|",
        "Số:",
        "Số: /",
        "ngày tháng năm",
        "I.",
        "1.\n2.\n- \n+",
        "**",
        "Giao",
        "Giao Sở",
        "trước ngày 99/99/9999",
        "trong 99999999999999999999 ngày kể từ ngày ký",
        "quý V/2025",
        "\u{0}\u{1}\u{feff}",
        "TL.\nKT.",
        "Nơi nhận:",
        "Kính gửi:",
        "a) b) c)",
        "Điều 1.",
    ] {
        let _ = parse_text(t);
    }
    let long = "1. Giao Sở Y tế, ".repeat(2000);
    let _ = parse_text(&long);
}

fn make_docx(paragraphs: &[&str]) -> Vec<u8> {
    let mut body = String::new();
    for p in paragraphs {
        let runs: Vec<String> = p
            .split('\t')
            .map(|part| {
                format!(
                    "<w:r><w:t xml:space=\"preserve\">{}</w:t></w:r>",
                    part.replace('&', "&amp;")
                )
            })
            .collect();
        body.push_str(&format!("<w:p>{}</w:p>", runs.join("<w:r><w:tab/></w:r>")));
    }
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body>{body}</w:body></w:document>"
    );
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("[Content_Types].xml", opts)
            .unwrap_or_else(|e| panic!("{e}"));
        zip.write_all(b"<?xml version=\"1.0\"?><Types/>")
            .unwrap_or_else(|e| panic!("{e}"));
        zip.start_file("word/document.xml", opts)
            .unwrap_or_else(|e| panic!("{e}"));
        zip.write_all(xml.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        zip.finish().unwrap_or_else(|e| panic!("{e}"));
    }
    buf.into_inner()
}

#[test]
fn docx_is_read_paragraph_by_paragraph() {
    let bytes = make_docx(&[
        "ỦY BAN NHÂN DÂN TỈNH AN GIANG",
        "Số: 77/TB-UBND",
        "An Giang,\tngày 10 tháng 3 năm 2025",
        "THÔNG BÁO",
        "Kết luận của Chủ tịch UBND tỉnh",
        "1. Giao Sở LĐTB&XH chủ trì, phối hợp với Sở Tài chính rà soát, hoàn thành trước ngày 30/4/2025.",
        "2. Sở Y tế thường xuyên kiểm tra.",
    ]);
    let text = docx_to_text(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert!(text.contains("Sở LĐTB&XH"));
    let d = parse_docx(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.document.number.as_deref(), Some("77/TB-UBND"));
    assert_eq!(d.document.issue_date, date(2025, 3, 10));
    assert_eq!(d.tasks.len(), 2);
    assert_eq!(
        fold_name(&d.tasks[0].lead[0]),
        fold_name("Sở Lao động – Thương binh và Xã hội")
    );
    assert_eq!(d.tasks[0].coordinating, vec!["Sở Tài chính"]);
    assert_eq!(d.tasks[0].due, date(2025, 4, 30));
    assert!(parse_docx(b"not a zip").is_err());
}
